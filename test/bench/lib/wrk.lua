-- wrk script shared by every CallFS and nginx scenario of test/bench.
-- args (after "--"): mode size prefix count
--   mode   GET | HEAD | PUT
--   size   PUT body bytes (ignored for GET/HEAD)
--   prefix URL path prefix; request i goes to prefix .. (i % count) [.. ".bin"]
--   count  number of distinct paths to cycle through; 0: request prefix itself
-- PUT paths also carry the thread number, so two connections never write the
-- same path at the same time. done() prints one machine-readable line.
local counter = 0
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

function init(args)
  mode = args[1] or "GET"
  size = tonumber(args[2] or "0")
  prefix = args[3] or "/"
  count = tonumber(args[4] or "1")
  if mode == "PUT" then
    body = string.rep("x", size)
  else
    body = nil
  end
  wrk.method = mode
  if tid == nil then tid = 0 end
end

function request()
  if count == 0 then
    return wrk.format(mode, prefix, nil, nil)
  end
  local i = counter % count
  counter = counter + 1
  if mode == "PUT" then
    return wrk.format("PUT", prefix .. tid .. "/" .. i .. ".bin", nil, body)
  end
  return wrk.format(mode, prefix .. i .. ".bin", nil, nil)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"status_errors":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeout_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.bytes, summary.duration, e.status, e.connect, e.read,
    e.write, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
