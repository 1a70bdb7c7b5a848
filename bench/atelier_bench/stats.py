"""The one percentile of the benchmarks, the soak and the load-test report."""
import math


def percentile(values, share: float):
    """The share-quantile (0..1) of values, linear between the closest ranks: what k6 reports as
    p(95) and numpy's default. None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * share
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
