"""A step run's peak resident set (workers/resources.py): reset when the run is alone in its
process, read from VmHWM; None where the platform does not say."""

from pathlib import Path

from workers.resources import PeakRss


def test_the_peak_is_reset_only_for_a_run_alone_and_read_in_kib(tmp_path: Path):
    status, clear = tmp_path / "status", tmp_path / "clear_refs"
    status.write_text("Name:\tcelery\nVmPeak:\t 900000 kB\nVmHWM:\t  51234 kB\nVmRSS:\t 40000 kB\n")
    peak = PeakRss(status, clear)
    peak.start()
    assert clear.read_text() == "5"
    clear.unlink()
    peak.start()  # a second run in the same process (threads pool): no reset
    assert not clear.exists()
    assert peak.stop() == 51234 and peak.stop() == 51234
    peak.start()  # alone again
    assert clear.read_text() == "5"


def test_no_proc_means_no_figure(tmp_path: Path):
    peak = PeakRss(tmp_path / "missing", tmp_path / "no-dir" / "clear_refs")
    peak.start()
    assert peak.stop() is None


def test_this_process_has_a_peak_on_linux():
    peak = PeakRss()
    peak.start()
    assert (peak.stop() or 0) > 1000  # KiB: a Python process holds more than 1 MiB
