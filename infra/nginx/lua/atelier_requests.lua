-- What the balancer checks of a request before it reaches a location's handler
-- (conf/routes.conf, rewrite phase): its method, a body where none belongs, and the deadline of
-- the whole request (infra/nginx/README.md, "Limits").
--
-- Why a deadline here: nginx's client_header_timeout bounds the whole header (its timer is set
-- once per request), but client_body_timeout is the longest gap between two reads, so a body
-- trickled a byte every few seconds could hold a connection for hours. Here the body is read
-- (ngx.req.read_body: nginx's own reader, so 413 and chunked bodies work as before) while a
-- light thread waits for the request's deadline, counted from the request's first byte
-- (ngx.req.start_time()); if the body is not complete by then, the request ends with 408.
local _M = {}

local READS = { GET = true, HEAD = true, OPTIONS = true }

-- A body on a method that has none: a client sending one is confused or probing (and nginx
-- would otherwise read it, and keep a slow one's connection). "Content-Length: 0" is no body.
local function has_body()
    local var = ngx.var
    local length = var.http_content_length
    return var.http_transfer_encoding ~= nil or (length ~= nil and length ~= "0")
end

local function read_body_by(deadline)
    local remaining = deadline - ngx.now()
    if remaining <= 0 then
        return ngx.exit(408)
    end
    local timer = ngx.thread.spawn(function()
        ngx.sleep(remaining)
        ngx.log(ngx.INFO, "request body not complete within the request deadline")
        -- Answered here (nginx itself closes a timed-out request without a word), then closed;
        -- X-Request-Id comes from conf/routes.conf.
        ngx.status = 408
        ngx.header["Content-Type"] = "application/json"
        ngx.header["Access-Control-Allow-Origin"] = ngx.var.atelier_cors_origin
        ngx.print('{"message": "The request took too long to arrive."}')
        ngx.flush(true)
        return ngx.exit(ngx.HTTP_CLOSE)
    end)
    ngx.req.read_body()
    ngx.thread.kill(timer)
end

-- Returns the method class: "read" or "write"; ends the request itself otherwise.
function _M.check()
    local method = ngx.req.get_method()
    if READS[method] then
        if has_body() then
            return ngx.exit(ngx.HTTP_BAD_REQUEST)
        end
        return "read"
    end
    -- Any other method of letters (POST, PUT; DELETE, PATCH meet the instance's 405 with the
    -- path's own Allow); a token nobody defines (`DELETE_`, `PUT.`) ends here as the contract's 405.
    if not method:match("^[A-Z]+$") then
        return ngx.exit(ngx.HTTP_NOT_ALLOWED)
    end
    return "write"
end

-- A write's body, read by the request's deadline (access phase of the write location).
function _M.read_body(deadline_seconds)
    if has_body() then
        ngx.update_time()
        read_body_by(ngx.req.start_time() + deadline_seconds)
    end
end

return _M
