"""`keypaint explain`: the forward chain, the reverse chain, attention per keyword and the latent space,
shown with the real model (Ho et al. 2020; Rombach et al. 2022). docs/how-it-works.md walks through them."""

from keypaint.core.sampling_math import closed_form
from keypaint.explain.attention import AttentionMaps, attention_maps, save_attention
from keypaint.explain.compare import compare_samplers, guidance_strip
from keypaint.explain.forward import ForwardChain, forward_chain, save_forward
from keypaint.explain.latent import RoundTrip, StepCost, roundtrip, step_costs
from keypaint.explain.reverse import Recording, record_reverse, save_reverse
from keypaint.explain.schedules import SCHEDULES, iterate_chain, plot_schedules

__all__ = [
    "SCHEDULES",
    "AttentionMaps",
    "ForwardChain",
    "Recording",
    "RoundTrip",
    "StepCost",
    "attention_maps",
    "closed_form",
    "compare_samplers",
    "forward_chain",
    "guidance_strip",
    "iterate_chain",
    "plot_schedules",
    "record_reverse",
    "roundtrip",
    "save_attention",
    "save_forward",
    "save_reverse",
    "step_costs",
]
