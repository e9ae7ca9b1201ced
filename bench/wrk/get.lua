-- GET HERALD_BENCH_PATH with the bench token, over and over.
function init(args)
  token = os.getenv("HERALD_BENCH_TOKEN") or ""
  path = os.getenv("HERALD_BENCH_PATH") or "/"
  headers = { ["Authorization"] = "Bearer " .. token }
end

function request()
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
