"""The load tests' runner (development tools beside the k6 scripts; nothing a service runs
imports them).

    python -m atelier_k6.loadtest run --profile smoke --script page-load   # make loadtest
    python -m atelier_k6.loadtest report [folder]                          # make report
    python -m atelier_k6.influx start|stop                                 # make influx
    python -m atelier_k6.count_check --script page-load --profile load     # does /metrics count what k6 sent?
"""
