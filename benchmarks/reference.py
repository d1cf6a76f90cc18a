"""Public Raspberry Pi figures (each with its source) and an arithmetic-scaled estimate.

Only figures actually read in the cited source are listed. Not found: a first-hand figure for a
quantized 224x224 MobileNetV2 classifier on a Pi 5, or a Pi 4 figure with the thread count
stated next to a classification model; the Pi 5 estimate therefore scales the Pi 4 one by the
Pi 5 / Pi 4 ratio measured by one author on one TFLite detection workload.
"""

from __future__ import annotations

#: MobileNetV2 1.0 224: 0.615 GFLOPs = ~0.31 G multiply-accumulates per image.
MOBILENET_V2_MACS = 0.615e9 / 2
MOBILENET_V2_MACS_SOURCE = (
    "OpenVINO Open Model Zoo, mobilenet-v2-1.0-224: 0.615 GFLOPs, 3.489 M params "
    "(https://docs.openvino.ai, model page omz_models_model_mobilenet_v2_1_0_224; read via a "
    "mirror at people.ece.ubc.ca/zitaoc/files/Intel-OpenVINO-2022.3/)"
)

#: Raspberry Pi 4, 32-bit OS, overclocked to 1950 MHz: quantized MobileNet V2 224x224 at 36.2 FPS
#: in a C++ TFLite classification demo (the FPS of the demo's loop, so an upper bound on latency).
PI4_MOBILENET_V2_FPS = 36.2
PI4_SOURCE = (
    "Q-engineering, TensorFlow_Lite_Classification_RPi_32-bits README: 'Frame rate Mobile_V2 "
    "Lite : 36.2 FPS (RPi 4 @ 1950 MHz - 32 bits OS)'; the README tells the reader to download "
    "the quantized hosted models (https://github.com/Qengineering/"
    "TensorFlow_Lite_Classification_RPi_32-bits)"
)

#: Same TFLite script, 4 threads, SSD MobileNet v2 300x300: Pi 4 112.6 ms, Pi 5 23.5 ms.
PI4_SSD_MS, PI5_SSD_MS = 112.6, 23.5
PI5_SOURCE = (
    "A. Allan, benchmarking-ml-on-the-edge README table (TensorFlow Lite, SSD MobileNet v2 "
    "300x300, interpreter.set_num_threads(4) in benchmark_tf_lite.py): Raspberry Pi 4 112.6 ms, "
    "Raspberry Pi 5 23.5 ms (https://github.com/aallan/benchmarking-ml-on-the-edge; article: "
    "https://www.hackster.io/news/benchmarking-tensorflow-and-tensorflow-lite-on-raspberry-pi-5-"
    "b9156d58a6a2)"
)


def estimates(model_macs: int, depthwise_macs: int = 0) -> list[str]:
    """Notes for RESULTS.md: the public figures and what they imply for a model of this size."""
    pi4_macs_per_s = MOBILENET_V2_MACS * PI4_MOBILENET_V2_FPS
    pi4_rate = pi4_macs_per_s / model_macs
    pi5_factor = PI4_SSD_MS / PI5_SSD_MS
    pi5_rate = pi4_rate * pi5_factor
    return [
        f"Public figures. Pi 4: {PI4_SOURCE}. Arithmetic: {MOBILENET_V2_MACS_SOURCE}. "
        f"Pi 5 vs Pi 4: {PI5_SOURCE}.",
        f"Pi 4 throughput implied: {MOBILENET_V2_MACS / 1e6:.0f} M MACs × "
        f"{PI4_MOBILENET_V2_FPS} images/s ≈ {pi4_macs_per_s / 1e9:.1f} G MACs/s (int8, 4 cores, "
        f"overclocked). Scaled to this model ({model_macs / 1e6:.1f} M MACs): "
        f"≈{pi4_rate:,.0f} images/s ({1000 / pi4_rate:.1f} ms/image) on a Pi 4.",
        f"Pi 5 ≈ {pi5_factor:.1f}× Pi 4 on Allan's TFLite workload: ≈{pi5_rate:,.0f} images/s "
        f"({1000 / pi5_rate:.1f} ms/image) for this model.",
        "Caveats: scaling by MACs assumes the same efficiency per MAC. "
        + (
            f"{100 * (1 - depthwise_macs / model_macs):.0f}% of this model's MACs are in dense "
            "convolutions and layers, which usually run more MACs/s than MobileNet's depthwise "
            "layers (the estimate errs low)"
            if depthwise_macs < 0.1 * model_macs
            else f"{100 * depthwise_macs / model_macs:.0f}% of its MACs are depthwise, as in "
            "MobileNet"
        )
        + ", while a 48×48 input leaves less work per invoke to hide fixed costs (errs high). "
        "These are estimates from others' figures, not measurements: a run of "
        "`python benchmarks/run.py` on the Pi replaces them.",
        "Section 1 on a Pi: compare the estimate above with this machine's bare-invoke rate. "
        "If inference slows on a Pi by more than PNG decoding does (plausible, not measured "
        "here), decoding is a smaller share there and section 1's ratio is higher than here.",
    ]
