-- wrk script for scripts/bench.py: `wrk -t1 ... -s wrk_capped.lua URL -- CAP`.
-- Counts responses and stops sending after CAP of them (wrk's -d bounds the time, this bounds the count; with -t1
-- the count is global; a stopped wrk still exits only when -d is over). Sends the header the transform workload
-- reads, and prints one machine-readable summary line.
local cap = 0
local count = 0

wrk.headers["X-Client-Id"] = "bench-client"

function init(args)
  cap = tonumber(args[1]) or 0
end

function response(status, headers, body)
  count = count + 1
  if cap > 0 and count >= cap then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
