"""The peers a model is compared with: ONNX Runtime and OpenVINO (fp32), when installed.

Each runner is fn(feeds: {name: NCHW array}) -> list of outputs in graph order, with its session
created here (outside any timing). Neither package is needed by convkit or its tests.
"""

import os
import tempfile


class PeerUnavailable(Exception):
    """The peer's package is not installed (or cannot load the model); the message says why."""


def onnxruntime_runner(model, threads):
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise PeerUnavailable(f"onnxruntime not installed ({error}); "
                              "python3 -m pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def openvino_runner(model, threads, input_shapes, bf16=False):
    try:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints
    except ImportError as error:
        raise PeerUnavailable(f"openvino not installed ({error}); "
                              "python3 -m pip install openvino") from None
    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        ov_model = core.read_model(path)
    ov_model.reshape({name: ov.PartialShape(list(shape)) for name, shape in input_shapes.items()})
    # fp32 unless asked: on CPUs with AVX512-BF16 OpenVINO's default precision hint is bf16.
    precision = ov.Type.bf16 if bf16 else ov.Type.f32
    config = {props.inference_num_threads: threads, hints.inference_precision: precision,
              hints.performance_mode: hints.PerformanceMode.LATENCY}
    compiled = core.compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()
    outputs = compiled.outputs

    def run(feeds):
        result = request.infer(feeds)
        return [result[o] for o in outputs]

    return run


PEERS = {"onnxruntime": onnxruntime_runner, "openvino": openvino_runner}


def make_runner(name, model, threads, input_shapes, bf16=False):
    """The peer's runner; bf16: OpenVINO's bf16 precision hint (ONNX Runtime has none: refused)."""
    if name == "onnxruntime":
        if bf16:
            raise PeerUnavailable("onnxruntime has no bf16 precision hint on CPU")
        return onnxruntime_runner(model, threads)
    if name == "openvino":
        return openvino_runner(model, threads, input_shapes, bf16)
    raise ValueError(f"unknown peer '{name}' (known: {', '.join(PEERS)})")
