"""The GAN benchmark's ablation table: changes paired by seed, the asked-class column for cGANs."""

from benchmarks.gan_recipes import CGAN_ABLATION, ablation_table


def run(fid: float, shares: list[float], asked: list[float] | None = None) -> dict:
    quality = {"fid": fid, "class_shares": shares, **({"asked_class_acc": asked} if asked else {})}
    return {"quality": quality, "floor_fid": 10.0, "fit_seconds": 120.0}


def rows(text: str) -> dict[str, list[str]]:
    return {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ") for line in text.splitlines()[2:]}


def test_changes_are_paired_by_seed_and_missing_cases_left_out() -> None:
    even = [0.1] * 10
    results = {
        "runs": {
            "abl_default/seed0": run(40.0, even),
            "abl_default/seed1": run(60.0, even),
            "abl_no_ema/seed0": run(45.0, [0.05, *[0.95 / 9] * 9]),
            "abl_no_ema/seed1": run(63.0, even),
        }
    }
    table = rows(ablation_table(results))
    assert set(table) == {"abl_default", "abl_no_ema"}  # cases without runs are left out
    default, no_ema = table["abl_default"], table["abl_no_ema"]
    assert default[3:6] == ["50.0 ± 14.1", "5.0 ± 1.4", "-"]
    # paired: +5 and +3 (mean 4.0, std 1.4); unpaired means would differ by 4.0 with a std of about 14
    assert no_ema[3:6] == ["54.0 ± 12.7", "5.4 ± 1.3", "4.0 ± 1.4"]
    assert no_ema[6] == "7.5 ± 3.5 / 10.3 ± 0.4"  # rarest 5% and 10%, commonest 10.56% and 10%
    assert "asked" not in ablation_table(results)


def test_a_conditional_ablation_shows_the_worst_asked_class() -> None:
    even = [0.1] * 10
    results = {
        "runs": {
            "cgan_abl_default/seed0": run(30.0, even, [0.99] * 9 + [0.93]),
            "cgan_abl_least_squares/seed0": run(25.0, even, [0.97] * 10),
        }
    }
    text = ablation_table(results, CGAN_ABLATION, "cgan_abl_default")
    assert "worst asked-class %" in text.splitlines()[0]
    table = rows(text)
    assert table["cgan_abl_default"][7] == "93.0" and table["cgan_abl_least_squares"][7] == "97.0"
    assert table["cgan_abl_least_squares"][5] == "-5.0"
