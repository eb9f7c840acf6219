/* clock.h - the server's time helpers: a monotonic clock for durations and a sleep that
 * resumes after signal handlers. */
#ifndef RAGCORE_SERVER_CLOCK_H
#define RAGCORE_SERVER_CLOCK_H

/* Seconds of CLOCK_MONOTONIC (durations only; unrelated to wall time). Can't fail. */
double srv_monotonic(void);

/* Sleeps ms milliseconds, resuming after signal handlers (EINTR) for the time left. */
void srv_sleep_ms(long ms);

#endif
