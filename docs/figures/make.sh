#!/usr/bin/env bash
# Re-make the figures of docs/how-it-works.md with the built-in model (run from the repository root).
# Timings in the latent table depend on the machine; these were made on a shared 2-core CPU, one thread.
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
out=docs/figures
keypaint explain schedules --out "$out/schedules.png"
keypaint explain forward --prompt "red apple" --seed 1 --out "$out/forward.png"
keypaint explain latent --prompt "red apple" --seed 1 --out "$out/latent.png"
keypaint explain reverse "red apple" --seed 1 --steps 20 --out "$out/reverse.png" --animation "$out/reverse.webp"
keypaint explain compare "red heart" --seed 1 --samplers "DDPM,DDIM,DPM++ 2M" --steps 5,10,20,50 \
    --out "$out/samplers.png"
keypaint explain guidance "cat face" --seed 1 --scales 1,2,4,7,12 --out "$out/guidance.png"
keypaint explain attention "red apple, green leaf" --seed 1 --out "$out/attention.png"
