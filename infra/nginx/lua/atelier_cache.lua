-- Read-your-writes for the balancer's cache (see infra/nginx/README.md).
--
-- Every cached view's key carries the version of the thing it shows (a product's questions,
-- reviews and meta: `product:<id>`; a question's answers: `question:<id>`). A write response
-- names what it changed in `X-Invalidates: product:12 question:34`; the balancer bumps those
-- versions before the client sees the acknowledgement, so every read it forwards afterwards
-- uses a new key and reaches an instance. Versions live in a lua_shared_dict (shared by the
-- workers, kept across reloads).
--
-- Mutable views also carry the current time slot (of `stale_bound` seconds, 1 by default) in
-- their key: another balancer, which never saw the write, stops serving an entry at the end of
-- the slot in which it was requested, so its readers see any write within `stale_bound`.
-- A catalogue view (products) carries the catalogue generation instead, bumped by `make load`
-- through the control socket.
local M = {}

local versions = ngx.shared.atelier_versions
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
    local slot = math.floor(ngx.now() / stale_bound)
    return epoch .. ":" .. subject .. "=" .. version(subject) .. "@" .. slot
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
