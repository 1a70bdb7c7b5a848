-- Whether the volume of the balancer's cached answers (the prefix, or --cache-dir) is full.
--
-- Why: nginx writes a cacheable answer to its cache file while passing it on; when that write
-- fails (No space left on device) it drops the connection, so with a full disk every cache miss
-- was a connection closed without an answer (tests/chaos/test_full_disk.py). Each worker checks
-- the volume's free space once a second (statvfs through LuaJIT's FFI: no process, no file);
-- below the reserve, reads are not stored in the cache (conf/routes.conf, proxy_no_cache) and
-- are passed on from memory as without a cache. The access log and the error log cannot be
-- written meanwhile; nothing else needs the disk.
local ffi = require "ffi"

local _M = {}

pcall(ffi.cdef, [[
struct atelier_statvfs {
    unsigned long f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail,
                  f_fsid, f_flag, f_namemax;
    int f_spare[6];
};
int statvfs(const char *path, struct atelier_statvfs *buf);
]])

local full = "0"

local function check(premature, path, reserve)
    if premature then
        return
    end
    local buf = ffi.new("struct atelier_statvfs")
    if ffi.C.statvfs(path, buf) == 0 then
        local free = tonumber(buf.f_bavail) * tonumber(buf.f_frsize)
        full = free < reserve and "1" or "0"
    end
end

-- In init_worker: check `path`'s volume now and every `seconds`.
function _M.watch(path, reserve, seconds)
    check(false, path, reserve)
    ngx.timer.every(seconds, check, path, reserve)
end

-- "1" when the volume had less than the reserve free at the last check, else "0".
function _M.full()
    return full
end

return _M
