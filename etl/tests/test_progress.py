"""Progress lines: redrawn in place on a terminal (rows, rows/s, percent, ETA), plain lines
otherwise."""
import io

from atelier_etl import progress as progress_module
from atelier_etl.progress import Progress


def test_live_lines_are_redrawn_in_place_and_finished_ones_stay(monkeypatch):
    out = io.StringIO()
    progress = Progress(out, live=True)
    monkeypatch.setattr(progress_module, "LIVE_EVERY", 0)
    photos, skus = progress.task("products photos.csv"), progress.task("products skus.csv")
    photos.update(1_000_000, 400, 1000)
    skus.update(10, 1, 1000)
    photos.done(2_500_000, 5.0)
    text = out.getvalue()
    assert "\x1b[2F" in text  # backed up over the two running lines to redraw them
    assert "products photos.csv" in text and "40.0%  ETA" in text and "rows/s" in text
    # the finished line is printed once above; only the running one is drawn below it
    finished = text.rindex("products photos.csv")
    assert "2,500,000 rows" in text[finished:] and "done in    5.0 s" in text[finished:]
    assert text[finished:].rstrip("\n").endswith("ETA     0 s") and "products skus.csv" in text[finished:]


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress(out, live=False)
    task = progress.task("qa answers.csv")
    task.update(5, 1, 10)  # too soon for a plain line
    task.done(6_879_306, 45.7)
    assert out.getvalue().splitlines() == [
        "qa answers.csv".ljust(44) + "    6,879,306 rows     150,532 rows/s  done in   45.7 s"]
    assert "\x1b" not in out.getvalue()
