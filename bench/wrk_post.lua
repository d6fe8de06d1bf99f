-- wrk script for the Crossroads benchmark.
-- POSTs the body in $BENCH_BODY_FILE with the headers in $BENCH_HEADERS_FILE
-- ("Name: value" per line), counts 2xx / non-2xx responses per thread, optionally
-- counts the values of one response header ($BENCH_COUNT_HEADER, lower case),
-- and prints parseable "BENCH <key> <value>" lines from done().

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local count_header = os.getenv("BENCH_COUNT_HEADER")
if count_header == "" then count_header = nil end

wrk.method = "POST"
wrk.body = read_all(os.getenv("BENCH_BODY_FILE"))
wrk.headers["Content-Type"] = "application/json"
local headers_file = os.getenv("BENCH_HEADERS_FILE")
if headers_file and headers_file ~= "" then
  for line in io.lines(headers_file) do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then wrk.headers[k] = v end
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  first_status = 0
  first_body = ""
  hdr_hit = 0
  hdr_miss = 0
  hdr_none = 0
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_status == 0 then
      first_status = status
      first_body = string.sub(body or "", 1, 300)
    end
  end
  if count_header then
    local v = headers[count_header]
    if v == nil then
      for k, val in pairs(headers) do
        if string.lower(k) == count_header then v = val break end
      end
    end
    if v == nil then
      hdr_none = hdr_none + 1
    elseif string.upper(v) == "HIT" then
      hdr_hit = hdr_hit + 1
    else
      hdr_miss = hdr_miss + 1
    end
  end
end

function done(summary, latency, requests)
  local t_ok, t_bad, t_hit, t_miss, t_none = 0, 0, 0, 0, 0
  local f_status, f_body = 0, ""
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_bad = t_bad + t:get("bad")
    t_hit = t_hit + t:get("hdr_hit")
    t_miss = t_miss + t:get("hdr_miss")
    t_none = t_none + t:get("hdr_none")
    if f_status == 0 and t:get("first_status") ~= 0 then
      f_status = t:get("first_status")
      f_body = t:get("first_body")
    end
  end
  local e = summary.errors
  local out = {
    {"requests", summary.requests}, {"duration_us", summary.duration},
    {"bytes", summary.bytes}, {"ok", t_ok}, {"non2xx", t_bad},
    {"err_connect", e.connect}, {"err_read", e.read}, {"err_write", e.write},
    {"err_timeout", e.timeout}, {"hdr_hit", t_hit}, {"hdr_miss", t_miss},
    {"hdr_none", t_none}, {"first_status", f_status},
    {"lat_mean_us", latency.mean}, {"lat_max_us", latency.max},
    {"p50_us", latency:percentile(50)}, {"p90_us", latency:percentile(90)},
    {"p99_us", latency:percentile(99)}, {"p999_us", latency:percentile(99.9)},
  }
  for _, kv in ipairs(out) do
    io.write(string.format("BENCH %s %s\n", kv[1], tostring(kv[2])))
  end
  local body = string.gsub(f_body, "[\r\n]", " ")
  io.write("BENCH first_body " .. body .. "\n")
end
