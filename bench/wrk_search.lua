-- wrk_search.lua - POSTs request bodies (one JSON per line of $BODIES) round-robin to the
-- URL's path with $KEY as bearer token; prints one JSON summary line at the end.
-- $WRK_DELAY (ms, optional) paces each connection.
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local key = os.getenv("KEY")
-- WRK_DELAY (ms): each connection pauses this long after every response (rate limiting)
local delay_ms = tonumber(os.getenv("WRK_DELAY") or "0") or 0
if delay_ms > 0 then
  delay = function() return delay_ms end
end
local i = 0

init = function(args)
  i = math.random(#bodies)
end

request = function()
  i = i % #bodies + 1
  local h = { ["Content-Type"] = "application/json" }
  if key and key ~= "" then h["Authorization"] = "Bearer " .. key end
  return wrk.format("POST", nil, h, bodies[i])
end

done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"qps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,"errors":%d,"non2xx":%d}\n',
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
