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
local reqs = {}
local i = 0

-- Every request is formatted once per thread here, so that wrk, which shares the CPUs
-- with the server under test, spends as little as it can per request.
init = function(args)
  local h = { ["Content-Type"] = "application/json" }
  if key and key ~= "" then h["Authorization"] = "Bearer " .. key end
  for j = 1, #bodies do reqs[j] = wrk.format("POST", nil, h, bodies[j]) end
  i = math.random(#reqs)
end

request = function()
  i = i % #reqs + 1
  return reqs[i]
end

done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"qps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,"p999_ms":%.2f,"errors":%d,"non2xx":%d}\n',
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
