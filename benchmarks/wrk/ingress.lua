-- wrk script: POST JSON bodies to the Restate ingress and dump the full latency histogram.
--
-- Environment (set by benchmarks/run.py):
--   BENCH_BODY    JSON request body (default "\"hello\"")
--   BENCH_KEYS    N > 0: virtual-object scenario, paths cycle over BENCH_PREFIX .. "key-<i>" .. BENCH_SUFFIX
--   BENCH_PREFIX  e.g. "/CounterSync/"
--   BENCH_SUFFIX  e.g. "/add"
--   BENCH_OUT     file for the JSON summary (requests, errors, latency histogram in microseconds)
-- HTTP status >= 400 is counted by wrk itself (summary.errors.status); no response() hook, so
-- wrk never hands responses to Lua (that would slow the generator down).
-- Each wrk connection has exactly one request in flight (HTTP/1.1 keep-alive, no pipelining), so
-- `-c N` keeps N requests in flight for the whole run.

local body = os.getenv("BENCH_BODY") or '"hello"'
local keys = tonumber(os.getenv("BENCH_KEYS") or "0")
local prefix = os.getenv("BENCH_PREFIX") or "/"
local suffix = os.getenv("BENCH_SUFFIX") or ""
local out = os.getenv("BENCH_OUT")

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

if keys > 0 then
  local counter = 0
  request = function()
    counter = counter + 1
    return wrk.format(nil, prefix .. "key-" .. (counter % keys) .. suffix)
  end
end

done = function(summary, latency, requests)
  if not out then return end
  local f = assert(io.open(out, "w"))
  local e = summary.errors
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  f:write(string.format('"min_us": %d, "max_us": %d, "mean_us": %f, "p50_us": %d, "p99_us": %d, "hist": [',
    latency.min, latency.max, latency.mean, latency:percentile(50), latency:percentile(99)))
  -- wrk 4.x: #latency is the number of distinct values, latency(i) returns (value_us, count)
  for i = 1, #latency do
    local v, n = latency(i)
    if i > 1 then f:write(",") end
    f:write(string.format("[%d,%d]", v, n))
  end
  f:write("]}\n")
  f:close()
end
