-- One endpoint for wrk (atelier_bench.wrk): every request draws an id uniformly from
-- BENCH_LOW..BENCH_HIGH and puts it where "{id}" stands in BENCH_PATH (and in BENCH_BODY, a
-- JSON body, when set). BENCH_METHOD defaults to GET; BENCH_SEED fixes the draw.
math.randomseed(tonumber(os.getenv("BENCH_SEED") or "1"))
local low = tonumber(os.getenv("BENCH_LOW") or "1")
local high = tonumber(os.getenv("BENCH_HIGH") or "1")
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH")
local body = os.getenv("BENCH_BODY")
if body == "" then body = nil end
local headers = {}
if body then headers["Content-Type"] = "application/json" end

request = function()
  local id = tostring(math.random(low, high))
  local b = nil
  if body then b = (string.gsub(body, "{id}", id)) end
  return wrk.format(method, (string.gsub(path, "{id}", id)), headers, b)
end
