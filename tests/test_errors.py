"""One validation style and one error formatter (vae_lab/errors.py)."""

from __future__ import annotations

import pytest

from vae_lab.errors import ConfigError, check, one_line, positive_float, positive_int


def test_one_line_joins_lines_and_drops_hydra_locations():
    err = ValueError("Error in call to target 'X':\n  bad   value\nfull_key: model.posterior\n")
    assert one_line(err) == "Error in call to target 'X':; bad value"
    assert one_line(err, limit=1) == "Error in call to target 'X':"
    assert one_line(KeyError()) == "KeyError"  # no message: the type's name
    assert one_line("  a\n\n b ") == "a; b"
    assert one_line("  a\n\n b ", sep=" ") == "a b"  # as vae-lab report lists a job's error
    assert one_line("") == ""


def test_config_errors_name_the_key_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"^latent_dim=0 is not allowed; expected an integer >= 1$"):
        positive_int("latent_dim", 0)
    with pytest.raises(ConfigError, match=r"^scale=-1 is not allowed; expected a number > 0$"):
        positive_float("scale", -1)
    with pytest.raises(ConfigError) as info:
        check(False, "split", "one of train, val, test", "dev")
    assert (info.value.key, info.value.value) == ("split", "dev")
    assert isinstance(info.value, ValueError)  # callers that catch ValueError still do
