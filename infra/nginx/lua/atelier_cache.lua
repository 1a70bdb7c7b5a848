-- The balancer's cache keys and the versions that keep them coherent (infra/nginx/README.md).
--
-- A cached view's key is built from what the view reads, parsed here the way the service
-- parses it (only its own parameters, first value of each, canonical integers, count clamped
-- like the service clamps it); anything the service would reject, or that this file cannot
-- read exactly as the service does, is not cached. Mutable views (questions, answers, reviews,
-- meta) also carry the version of the thing they show (`product:<id>`, `question:<id>`):
--   - a write through this balancer names what it changed in `X-Invalidates`; the header
--     filter bumps those versions before the client sees the acknowledgement;
--   - a write through any other balancer reaches this one through PostgreSQL NOTIFY: a
--     listener beside this nginx (atelier_common.cache_listener) keeps a session open on the
--     control socket and sends each notification as a line (`M.session`);
--   - mutable views are cached only while that listener vouches for them (its lease); when its
--     session ends, or it falls silent, they bypass the cache and a new mutable epoch makes
--     every entry cached before unreachable.
-- Version values come from one counter (`clock`), so a value is never used twice for a key;
-- they expire (version_ttl, longer than any mutable entry can live and be filled), so a key
-- whose version expired reads as 0 only once every entry cached under 0 is dead. A version the
-- store cannot hold (full) moves its bucket's floor instead: 1/BUCKETS of the views miss.
local M = {}

local versions = ngx.shared.atelier_versions
local floors = ngx.shared.atelier_floors
local fills = ngx.shared.atelier_fills

local MAX_ID = 2147483647
local BUCKETS = 1024
local SORTS = {newest = "newest", newness = "newest", helpful = "helpful", helpfulness = "helpful",
               relevant = "relevant", relevance = "relevant"}

-- Set once in init (the master) and inherited by the workers.
local options = {}

-- init_by_lua: a fresh nginx (cache files may survive a restart, the dict does not) starts
-- from a new epoch, so no entry cached by an earlier run is ever served. `add` keeps the
-- values across a reload (HUP). Every fixed key exists from here on: later writes to them
-- replace a number in place and never need memory.
function M.init(opts)
    options = opts
    versions:add("epoch", math.floor(ngx.now() * 1000))
    versions:add("catalogue", 0)
    versions:add("mutable", 0)   -- bumped whenever the listener's vouching starts or ends
    versions:add("clock", 0)     -- source of version values
    versions:add("lease", 0)     -- the listener vouches for mutable views until this instant
end

-- init_worker_by_lua: one worker returns expired versions' memory every second.
function M.init_worker()
    if ngx.worker.id() == 0 then
        ngx.timer.every(1, function() versions:flush_expired(10000) end)
    end
end

-- An integer the way the service reads one (atelier_common.validation.WholeNumber: decimal
-- digits, at most 12, from 1 to 2^31-1): the number, or nil.
local function whole(value)
    if type(value) == "table" then
        value = value[1]  -- repeated: the service reads the first
    end
    if type(value) ~= "string" or #value > 12 or not value:match("^%d+$") then
        return nil
    end
    local number = tonumber(value)
    if number < 1 or number > MAX_ID then
        return nil
    end
    return number
end

-- page and count as PageSchema reads them (defaults 1 and 5, count clamped): "page|count".
local function page(args)
    local number, count = 1, 5
    if args.page ~= nil then
        number = whole(args.page)
    end
    if args.count ~= nil then
        count = whole(args.count)
    end
    if not number or not count then
        return nil
    end
    return string.format("%d|%d", number, math.min(count, options.max_count))
end

local function first(value)
    if type(value) == "table" then
        return value[1]
    end
    return value
end

-- The views each service caches: raw path (one trailing slash ignored, as the services do) →
-- a function of the query arguments giving (the view's canonical key, its subject or nil).
-- The raw path must be exactly one of these (no escapes, no doubled slashes): a path that
-- nginx would normalise but the service would not read the same way is never cached.
local ROUTES = {
    products = function(path, args)
        if path == "/products" then
            local p = page(args)
            return p and ("P|" .. p)
        end
        local id, view = path:match("^/products/(%d+)(.*)$")
        id = whole(id)
        if not id then
            return nil
        end
        local kind = ({[""] = "p", ["/styles"] = "s", ["/related"] = "r"})[view]
        return kind and string.format("%s|%d", kind, id)
    end,
    qa = function(path, args)
        if path == "/qa/questions" then
            local product, p = whole(args.product_id), page(args)
            if product and p then
                return "Q|" .. p, "product:" .. product
            end
            return nil
        end
        local question = whole(path:match("^/qa/questions/(%d+)/answers$"))
        local p = question and page(args)
        if p then
            return "A|" .. p, "question:" .. question
        end
        return nil
    end,
    reviews = function(path, args)
        local product = whole(args.product_id)
        if not product then
            return nil
        end
        if path == "/reviews/meta" then
            return "M", "product:" .. product
        end
        if path == "/reviews" then
            local sort = args.sort == nil and "relevant" or SORTS[first(args.sort)]
            local p = page(args)
            if sort and p then
                return string.format("R|%s|%s", sort, p), "product:" .. product
            end
        end
        return nil
    end,
}

local function bucket(subject)
    return ngx.crc32_short(subject) % BUCKETS
end

-- The version part of a subject's key: its own version (0 when it has none, or it expired)
-- and its bucket's floor.
local function subject_version(subject)
    return string.format("%s=%d/%d", subject, versions:get(subject) or 0, floors:get(bucket(subject)) or 0)
end

-- The cache key of this GET, or "" when it is not cached (the balancer passes it through).
-- Sets $cache_nostore for a client that has filled more than its budget.
function M.cache_key()
    local path = ngx.var.request_uri:match("^[^?]*")
    if #path > 1 and path:sub(-1) == "/" then
        path = path:sub(1, -2)
    end
    if path:find("[^%w/]") then
        return ""
    end
    -- Every argument, however many (nginx stops at 100 by default: a product_id placed after
    -- 100 junk arguments would be read by the service but not here).
    local args = ngx.req.get_uri_args(0)
    local view, subject = ROUTES[options.service](path, args)
    if not view then
        return ""
    end
    if options.fill_budget > 0 and (fills:get(ngx.var.binary_remote_addr) or 0) > options.fill_budget then
        ngx.var.cache_nostore = "1"
    end
    local epoch = versions:get("epoch")
    if not subject then
        return string.format("%d:c%d|%s", epoch, versions:get("catalogue"), view)
    end
    if (versions:get("lease") or 0) <= ngx.now() then
        return ""  -- no listener vouches for this balancer's versions: not cached
    end
    return string.format("%d.%d:%s|%s", epoch, versions:get("mutable"), subject_version(subject), view)
end

-- log_by_lua of a read: count what this client made the cache store (bytes per minute).
function M.count_fill()
    if options.fill_budget <= 0 then
        return
    end
    local status = ngx.var.upstream_cache_status
    if status ~= "MISS" and status ~= "EXPIRED" then
        return
    end
    local length = tonumber((ngx.var.upstream_response_length or ""):match("(%d+)$"))
    if length then
        fills:incr(ngx.var.binary_remote_addr, length, 0, 60)
    end
end

-- Bump the versions named in "product:12 question:34" (a write's X-Invalidates, a listener's
-- notification). Returns how many keys it bumped.
function M.bump(named)
    local count = 0
    for key in named:gmatch("%S+") do
        if #key <= 40 and key:match("^[a-z]+:%d+$") then
            local value = versions:incr("clock", 1, 0)
            local ok, err = versions:safe_set(key, value, options.version_ttl)
            if not ok then
                -- The store is full of live versions: this key's whole bucket takes the value
                -- (its views miss once) rather than the key losing its bump.
                floors:set(bucket(key), value)
                ngx.log(ngx.WARN, "version store: ", err, "; bucket ", bucket(key), " moved")
            end
            count = count + 1
        end
    end
    return count
end

-- header_filter of a write: bump what a successful write says it changed, then drop the
-- internal header so clients never see it.
function M.apply_invalidations()
    local named = ngx.header["X-Invalidates"]
    ngx.header["X-Invalidates"] = nil
    if not named or ngx.status < 200 or ngx.status >= 300 then
        return
    end
    if type(named) == "table" then
        named = table.concat(named, " ")
    end
    M.bump(named)
end

-- The data was reloaded (`make load`): every cached view, the catalogue included, is gone.
function M.flush()
    versions:incr("catalogue", 1, 0)
    versions:incr("epoch", 1, 0)
end

-- The listener vouches for this balancer until now + lease; when it had stopped vouching
-- (first session, or it fell silent), notifications may have been missed meanwhile: a new
-- mutable epoch first.
local function vouch()
    ngx.update_time()
    local now = ngx.now()
    if (versions:get("lease") or 0) <= now then
        versions:incr("mutable", 1, 0)
    end
    versions:set("lease", now + options.lease)
end

local function unvouch()
    versions:set("lease", 0)
    versions:incr("mutable", 1, 0)
end

-- The control socket's POST /listen: the listener's session (atelier_common.cache_listener).
-- The listener has LISTENed before it opens it. Each line it sends renews its lease:
--   p                          ping (the listener's database connection answered just now)
--   b product:12 question:34   a notification: bump these versions
--   f                          the data was reloaded: flush
-- and is answered "ok". When the session ends (the listener died, or lost its database and
-- closed it; nginx stops), mutable views stop being cached at once, under a new epoch.
function M.session()
    local sock, err = ngx.req.socket(true)
    if not sock then
        ngx.log(ngx.ERR, "listener session: ", err)
        return ngx.exit(500)
    end
    vouch()
    local ok = sock:send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    sock:settimeout(250)
    while ok do
        local line, problem = sock:receive("*l")
        if line then
            vouch()
            local command = line:sub(1, 1)
            if command == "b" then
                M.bump(line:sub(3))
            elseif command == "f" then
                M.flush()
            end
            ok = sock:send("ok\n")
        elseif problem ~= "timeout" or ngx.worker.exiting() then
            break  -- closed by the listener, or this worker is shutting down (reload)
        end
    end
    unvouch()
    -- The request's raw socket has no close(): nginx closes the connection when this handler
    -- returns (the answer said Connection: close).
end

-- POST /flush (tools/stack.py flush): as a load's notification does.
function M.flush_request()
    M.flush()
    ngx.header["Content-Type"] = "application/json"
    ngx.say('{"flushed":true}')
end

-- POST /bump, body "product:1 question:2 …": as a notification does (tests, operators).
function M.bump_request()
    ngx.req.read_body()
    local count = M.bump(ngx.req.get_body_data() or "")
    ngx.header["Content-Type"] = "application/json"
    ngx.say(string.format('{"bumped":%d}', count))
end

-- GET /state[?keys=product:1,question:2]: what this balancer's versions are now.
function M.state_request()
    ngx.update_time()
    local parts = {}
    for key in (ngx.var.arg_keys or ""):gmatch("[^,]+") do
        if key:match("^[a-z]+:%d+$") then
            parts[#parts + 1] = string.format('"%s":"%s"', key, subject_version(key))
        end
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(string.format(
        '{"epoch":%d,"catalogue":%d,"mutable":%d,"clock":%d,"vouched_for":%.3f,"free_bytes":%d,"versions":{%s}}',
        versions:get("epoch"), versions:get("catalogue"), versions:get("mutable"), versions:get("clock"),
        math.max(0, (versions:get("lease") or 0) - ngx.now()), versions:free_space(), table.concat(parts, ",")))
end

return M
