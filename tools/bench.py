"""`make bench SERVICE=name`: see atelier_bench.py."""
from atelier_bench import main

main()
