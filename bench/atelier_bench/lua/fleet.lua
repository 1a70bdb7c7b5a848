-- The page-load mix for wrk (atelier_bench.fleet writes the request files and runs this).
--
-- wrk connects every connection of a thread to one address, and a page load touches three
-- balancers: so thread i replays the requests of service i (products, qa, reviews) from
-- $BENCH_DIR/<service>.txt ("page<TAB>METHOD<TAB>path<TAB>body" per line, in page-load order).
-- A browser's page load is done when all three parts are: the threads share their progress
-- (the page load each is at) through a small shared-memory file, and a thread that runs more
-- than WINDOW page loads ahead of the slowest waits, so the mix keeps its proportions and the
-- slowest service sets the pace, as it would for real shoppers.
local ffi = require("ffi")
ffi.cdef [[
int open(const char *path, int flags, int mode);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]

local SERVICES = { "products", "qa", "reviews" }
local WINDOW = 20 -- page loads a thread may run ahead of the slowest one
local O_RDWR, PROT_READ_WRITE, MAP_SHARED = 2, 3, 1

local threads = {}

function setup(thread)
  local index = #threads + 1
  local service = SERVICES[(index - 1) % #SERVICES + 1]
  local host, port = os.getenv("BENCH_" .. service:upper()):match("^([^:]+):(%d+)$")
  thread.addr = wrk.lookup(host, port)[1]
  thread:set("service", service)
  thread:set("host", host .. ":" .. port)
  thread:set("slot", index - 1)
  table.insert(threads, thread)
end

local requests, pages = {}, {}
local count, page_loads, issued, progress, started = 0, 0, 0, nil, 0
local now_spec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, now_spec) -- CLOCK_MONOTONIC
  return tonumber(now_spec.tv_sec) * 1000 + tonumber(now_spec.tv_nsec) / 1e6
end

-- The page load of the n-th request this thread sends (0-based); the file repeats when the run
-- outlasts it, with page numbers continuing.
local function page_of(n)
  return pages[n % count + 1] + math.floor(n / count) * page_loads
end

function init(args)
  local dir = os.getenv("BENCH_DIR")
  page_loads = tonumber(os.getenv("BENCH_PAGE_LOADS"))
  for line in io.lines(dir .. "/" .. service .. ".txt") do
    local page, method, path, body = line:match("^(%d+)\t(%u+)\t([^\t]+)\t?(.*)$")
    local request_headers = { Host = host }
    if body ~= "" then request_headers["Content-Type"] = "application/json" else body = nil end
    count = count + 1
    requests[count] = wrk.format(method, path, request_headers, body)
    pages[count] = tonumber(page)
  end
  local fd = ffi.C.open(dir .. "/progress", O_RDWR, 0)
  progress = ffi.cast("volatile int64_t *", ffi.C.mmap(nil, 64, PROT_READ_WRITE, MAP_SHARED, fd, 0))
  started = now_ms()
end

function request()
  progress[slot] = page_of(issued)
  issued = issued + 1
  return requests[(issued - 1) % count + 1]
end

function delay()
  local mine = page_of(issued)
  local slowest = math.huge
  for other = 0, #SERVICES - 1 do
    if other ~= slot then
      local at = tonumber(progress[other])
      if at < slowest then slowest = at end
    end
  end
  local ahead = mine - slowest - WINDOW
  if ahead <= 0 then return 0 end
  -- Wait about as long as the slowest thread takes to cover the gap at its pace so far.
  local pace = math.max(slowest, 1) / math.max(now_ms() - started, 1) -- page loads per ms
  return math.min(math.floor(ahead / pace) + 1, 200)
end

function done(summary, latency, _)
  local parts = {}
  for _, thread in ipairs(threads) do
    table.insert(parts, string.format('{"service": "%s"}', thread:get("service")))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_FLEET {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "threads": [%s]}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    table.concat(parts, ", ")))
end
