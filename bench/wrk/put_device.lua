-- PUT /v1/devices/{id} with a fresh id per request (every request registers
-- a new device: one event, one projection row). With HERALD_BENCH_DEVICES=N
-- each thread cycles over N devices instead, each request changing the
-- device's push token (after the first round, every request updates one).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("HERALD_BENCH_TOKEN") or ""
  prefix = os.getenv("HERALD_BENCH_PREFIX") or "dev"
  body = '{"push_token":"tok-0123456789abcdef0123456789abcdef","send_platform":"fcm","device_platform":"android"}'
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
  devices = tonumber(os.getenv("HERALD_BENCH_DEVICES") or "")
  local prefer = os.getenv("HERALD_BENCH_PREFER")
  if prefer and prefer ~= "" then headers["Prefer"] = prefer end
end

function request()
  counter = counter + 1
  if devices then
    local changed = '{"push_token":"tok-' .. tid .. '-' .. counter .. '-0123456789abcdef","send_platform":"fcm","device_platform":"android"}'
    return wrk.format("PUT", "/v1/devices/" .. prefix .. "-" .. tid .. "-" .. (counter % devices), headers, changed)
  end
  return wrk.format("PUT", "/v1/devices/" .. prefix .. "-" .. tid .. "-" .. counter, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
