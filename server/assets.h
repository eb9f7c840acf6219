/* assets.h - files compiled into the binary: the OpenAPI document and the dashboard
 * (generated at build time from server/openapi.json and server/dashboard.html). */
#ifndef SRV_ASSETS_H
#define SRV_ASSETS_H

#include <stddef.h>

extern const unsigned char srv_asset_openapi[];
extern const size_t srv_asset_openapi_len;
extern const unsigned char srv_asset_dashboard[];
extern const size_t srv_asset_dashboard_len;

#endif
