"""`keypaint explain` on a rectified-flow model: the DDPM-chain views say how it differs."""

from __future__ import annotations

import pytest

from keypaint.errors import InvalidParams
from keypaint.explain.flow import check_view
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.models.tiny_flow import tiny_flow_model


@pytest.mark.parametrize("view", ["forward", "reverse", "attention", "guidance", "latent"])
def test_ddpm_views_explain_the_flow_chain_instead(view: str) -> None:
    with pytest.raises(InvalidParams) as err:
        check_view(tiny_flow_model(ModelKind.FLUX), view)

    text = str(err.value)
    assert f"`explain {view}` draws DDPM's chains" in text
    assert "x_t = (1 - t) x_0 + t eps" in text and "velocity" in text and "docs/flow-models.md" in text


def test_compare_and_u_net_models_pass() -> None:
    check_view(tiny_flow_model(ModelKind.SD3), "compare")
    check_view(tiny_model(ModelKind.SD1), "reverse")
