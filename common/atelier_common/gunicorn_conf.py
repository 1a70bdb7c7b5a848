"""gunicorn settings shared by the three services: `gunicorn -c python:atelier_common.gunicorn_conf`.

Everything can be overridden from the environment (BIND, WEB_CONCURRENCY, WORKER_CONNECTIONS, …)."""
import gc
import glob
import os
import shutil
import tempfile

bind = [os.environ.get("BIND", "127.0.0.1:8000")]
# The private metrics listener (atelier_common.metrics): /metrics there only.
if os.environ.get("METRICS_LISTEN"):
    bind.append(os.environ["METRICS_LISTEN"])
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gevent's pywsgi server under gunicorn: on this machine (1 worker, /healthz, ab -k -c50) it
# served ~3.4k req/s at p50 15 ms / p99 44-83 ms, where gunicorn's own gevent worker gave the same
# throughput at p50 0-3 ms but p99 100-190 ms: the latter lets a connection whose next request is
# already waiting jump the queue, and the others starve. Fair beats lucky.
# (atelier_common.worker: that same worker, whose few answers of its own are JSON too, and
# which writes each answer in one send: an instance that dies mid-answer never leaves the
# balancer a header without its body.)
worker_class = os.environ.get("WORKER_CLASS", "atelier_common.worker.ContractWorker")
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
# Recycle workers now and then (a leak cannot grow forever); the jitter keeps them from all
# restarting at once.
# A worker does 3-4k req/s: a million requests is a restart every few minutes under full load
# (each restart stalls that worker's connections for the second a new one takes to boot).
max_requests = int(os.environ.get("MAX_REQUESTS", "1000000"))
max_requests_jitter = int(os.environ.get("MAX_REQUESTS_JITTER", "100000"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("KEEPALIVE", "75"))  # longer than the balancer's idle keepalive
backlog = int(os.environ.get("BACKLOG", "2048"))
accesslog = os.environ.get("ACCESS_LOG") or None  # off by default: it costs throughput
errorlog = os.environ.get("ERROR_LOG", "-")
# JSON lines, and the services' own `atelier` logger written to the same error log.
logger_class = "atelier_common.logs.GunicornLogger"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = os.environ.get("PROC_NAME", "atelier")
# gunicorn's control socket has one default path per user: several services (and test servers)
# on one machine would fight over it, and nothing here uses gunicornc.
control_socket_disable = True


def on_starting(server):
    _prepare_metrics_folder(server)


def on_exit(server):
    if getattr(server, "metrics_folder_made", None):
        shutil.rmtree(server.metrics_folder_made, ignore_errors=True)


def child_exit(server, worker):
    """In the master: a dead worker's in-flight requests are no longer in flight."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """In the worker, on its way out: what it counted since its last flush."""
    from atelier_common.metrics import TALLY

    if TALLY.enabled:
        TALLY.flush()


def _prepare_metrics_folder(server):
    """prometheus-client's multiprocess mode: the workers of this master share one folder of
    metric files. PROMETHEUS_MULTIPROC_DIR when given (its old *.db files removed: the counts
    of a previous run are not ours), else a fresh temporary folder removed at exit. Set before
    any worker imports prometheus_client, which reads it at import."""
    if os.environ.get("METRICS") == "0":
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    else:
        folder = tempfile.mkdtemp(prefix=f"{server.proc_name}-metrics-")
        server.metrics_folder_made = folder
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def post_fork(server, worker):
    from atelier_common.db import make_green

    make_green()


def post_worker_init(worker):
    from atelier_common.metrics import TALLY

    TALLY.start_flushing()
    _count_requests(worker)
    # Objects created at import time never die: freezing them keeps the collector from
    # rescanning them on every full collection (one source of the latency tail).
    gc.collect()
    gc.freeze()


def _count_requests(worker):
    """max_requests for the pywsgi worker, which (unlike gunicorn's own gevent worker) never
    counts requests: after its max_requests (jitter included, drawn by gunicorn per worker)
    the worker stops accepting, finishes what it has, and the master starts a fresh one."""
    app = worker.wsgi

    def counted(environ, start_response):
        worker.nr += 1
        if worker.nr == worker.max_requests:
            worker.log.info("autorestarting worker after %s requests", worker.nr)
            worker.alive = False
        return app(environ, start_response)

    worker.wsgi = counted
