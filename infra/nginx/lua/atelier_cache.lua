-- Read-your-writes for the balancer's cache (see infra/nginx/README.md).
--
-- Every cached view's key carries the version of the thing it shows (a product's questions,
-- reviews and meta: `product:<id>`; a question's answers: `question:<id>`). A write response
-- names what it changed in `X-Invalidates: product:12 question:34`; the balancer bumps those
-- versions before the client sees the acknowledgement, so every read it forwards afterwards
-- uses a new key and reaches an instance. Versions live in a lua_shared_dict (shared by the
-- workers, kept across reloads).
--
-- Mutable views also carry a generation in their key: the instant (this balancer's clock) at
-- which the generation was started, before any request under that key reached an instance. A
-- generation is used only while it is younger than `stale_bound` seconds (1 by default), so an
-- entry served at T holds data read after T - stale_bound: another balancer, which never saw a
-- write, shows it within `stale_bound`. Generations are per view (version + request line), not
-- wall-clock slots shared by every key: once a view's generation is 3/4 of its life old, ONE
-- request starts and fills the next one while the others keep hitting the current entry, so a
-- busy view switches to a filled entry instead of waiting on nginx's cache lock (which wakes
-- its waiters only every 500 ms).
-- A catalogue view (products) carries the catalogue generation instead, bumped by `make load`
-- through the control socket.
local M = {}

local versions = ngx.shared.atelier_versions
local generations = ngx.shared.atelier_generations
local EPOCH = "epoch"            -- part of every key: a new one orphans every cached entry
local CATALOGUE = "catalogue"    -- bumped when the catalogue is reloaded

-- Called from init_by_lua: a fresh nginx (cache files may survive a restart, versions do not)
-- starts from a new epoch, so no entry cached under an old version can ever be served again.
-- `add` keeps the epoch across a reload (HUP), when the shared dict survives.
function M.init()
    versions:add(EPOCH, math.floor(ngx.now() * 1000))
end

local function version(key)
    return versions:get(key) or 0
end

-- A decimal id as the service reads it ("012" is 12; at most 12 digits, else it answers 422),
-- or nil when the view must not be cached (absent, repeated or not a plain number).
local function plain_id(value)
    if type(value) ~= "string" or #value > 12 or not value:match("^%d+$") then
        return nil
    end
    return string.format("%d", tonumber(value))
end

local function product_arg()
    local value = ngx.req.get_uri_args(20).product_id
    return plain_id(value)
end

-- The part of the cache key that makes an entry unreachable once its data changed, or nil for
-- a request that is not cached (then the balancer passes it through).
function M.key_version(stale_bound)
    local path = ngx.var.uri
    local epoch = string.format("%d", version(EPOCH))
    if path:match("^/products") then
        return epoch .. ":c" .. version(CATALOGUE)
    end
    local subject
    if path == "/qa/questions" or path == "/qa/questions/"
        or path == "/reviews" or path == "/reviews/"
        or path == "/reviews/meta" or path == "/reviews/meta/" then
        local product = product_arg()
        subject = product and ("product:" .. product)
    else
        local question = path:match("^/qa/questions/(%d+)/answers/?$")
        question = plain_id(question)
        subject = question and ("question:" .. question)
    end
    if not subject then
        return nil
    end
    local view = epoch .. ":" .. subject .. "=" .. version(subject) .. "|" .. ngx.var.request_uri
    return string.format("%s@%.3f", view, M.generation(view, stale_bound))
end

-- The generation (its birth, seconds since 1970) a request for `view` uses. Invariant: the
-- returned birth B is at most now (so every request under the key B, and so the fill of its
-- entry, reached this balancer after B) and now < B + bound (so an entry is served only while
-- younger than bound). Only the hit ratio, never the bound, depends on the races and on the
-- dict evicting a key (a lost key only starts a new generation).
function M.generation(view, bound)
    ngx.update_time()  -- the cached time may lag by an event-loop turn: read the clock
    -- ngx.now() is truncated to the millisecond: `now` is at most the real time, `now + 0.001`
    -- above it, so the checks below hold for the real time.
    local now = ngx.now()
    local current_key = "c" .. view
    local born = generations:get(current_key)
    if born and now + 0.001 < born + bound then
        -- Past 3/4 of its life: one request (the first to claim it) fills the next generation,
        -- which leaves it a quarter of the bound to arrive before the others switch to it.
        if now >= born + 0.75 * bound and generations:add("n" .. born .. view, now, 2 * bound) then
            return now
        end
        return born
    end
    if born then
        -- Too old to serve: switch to the next generation if one was started and is young.
        local next_born = generations:get("n" .. born .. view)
        if next_born and now + 0.001 < next_born + bound then
            generations:set(current_key, next_born, 3 * bound)
            return next_born
        end
    end
    -- None (a view nobody asked for within its life): start one. Concurrent starters agree on
    -- the first one's, so concurrent misses share one key, and nginx's cache lock.
    local start_key = "s" .. (born or "") .. view
    if generations:add(start_key, now, 2 * bound) then
        generations:set(current_key, now, 3 * bound)
        return now
    end
    local started = generations:get(start_key)
    if started and now + 0.001 < started + bound then
        return started
    end
    return now
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
    for key in named:gmatch("%S+") do
        if key:match("^[a-z]+:%d+$") then
            local _, err, forcible = versions:incr(key, 1, 0)
            if err or forcible then
                -- The dict was full and dropped some version: an evicted key would read as 0
                -- again and could meet an old entry; a new epoch makes every old entry unreachable.
                versions:set(EPOCH, versions:get(EPOCH) + 1)
                ngx.log(ngx.WARN, "version store full (", err or "evicted", "): new cache epoch")
            end
        end
    end
end

-- The control socket's POST /flush: the catalogue was reloaded (and so was everything else).
function M.flush()
    versions:incr(CATALOGUE, 1, 0)
    versions:incr(EPOCH, 1, 0)
    ngx.header["Content-Type"] = "application/json"
    ngx.say('{"flushed":true}')
end

return M
