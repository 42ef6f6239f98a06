#!/usr/bin/env python3
"""ONNX Runtime and OpenVINO as peer columns for tools/convkit_compare.py: forward convolution.

Reads the shapes convkit_bench prints with --list_shapes (one JSON object per line) and times one
peer on each conv shape as a one-node ONNX graph: a Conv with constant weights and bias
(initializers, so the runtime packs them when the session / compiled model is created), NCHW input
and output as both runtimes expect (convkit is NHWC; each runs its own native layout, and ONNX
Runtime's reorders to its blocked layout, when it inserts them, are inside the timed call). Writes a
JSON list of records named like convkit_bench's, "conv2d_fwd/<peer>/<set>/<shape>/N<batch>", with
the same GFLOPS counter (nominal 2*N*OH*OW*OC*KH*KW*IC/groups), from wall time, and the process
CPU time per call (cpu_time, for tools/convkit_compare.py --cpu-time).

Settings, as a user who wants the fastest fp32 answer sets them:
- onnxruntime: intra-op threads = --threads, one inter-op thread, sequential execution, every graph
  optimisation, output bound once through IOBinding (no allocation per call);
- openvino: CPU device, INFERENCE_PRECISION_HINT f32 (it defaults to bf16 on CPUs with AVX512-BF16,
  which would not be the same computation), INFERENCE_NUM_THREADS = --threads, one stream, LATENCY
  hint; one infer request whose input tensor shares the numpy array.
Sessions and compiled models are created outside the timing; the default thread wait policies.
Each timed call goes through Python (~2-5 us), which counts against sub-50 us layers.

  python3 tools/peers_bench.py --peer onnxruntime --shapes out/shapes.jsonl --threads 2 \
      --out out/onnxruntime.json
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

PEERS = ("onnxruntime", "openvino")


def time_call(fn, min_time, repetitions):
    """(wall, cpu): medians over repetitions of the mean wall time and process CPU time per
    call, each repetition over >= min_time seconds of wall time."""
    fn()  # warm-up: first touch, lazy kernel selection
    fn()
    walls, cpus = [], []
    for _ in range(repetitions):
        calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        walls.append(elapsed / calls)
        cpus.append((time.process_time() - cpu_start) / calls)
    return statistics.median(walls), statistics.median(cpus)


def conv_model(shape):
    """(ONNX ModelProto, x as NCHW float32 array, y's NCHW dims) for one conv shape."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n, h, w, c = shape["x"]
    kh, kw, cin_g, cout = shape["w"]
    _, oh, ow, _ = shape["y"]
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    weight = rng.uniform(-1, 1, (cout, cin_g, kh, kw)).astype(np.float32)
    bias = rng.uniform(-1, 1, (cout,)).astype(np.float32)
    top, bottom, left, right = shape["pad"]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[kh, kw],
                            strides=shape["stride"], dilations=shape["dilation"],
                            pads=[top, left, bottom, right], group=shape["groups"])
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, cout, oh, ow])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every runtime of the last years
    onnx.checker.check_model(model)
    return model, x, (n, cout, oh, ow)


class OnnxRuntime:
    def __init__(self, threads):
        import onnxruntime

        self.ort = onnxruntime
        self.version = "onnxruntime " + onnxruntime.__version__
        self.threads = threads

    def prepare(self, shape):
        import numpy as np

        model, x, y_dims = conv_model(shape)
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = self.ort.InferenceSession(model.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
        y = np.empty(y_dims, np.float32)
        binding = session.io_binding()
        binding.bind_cpu_input("x", x)
        binding.bind_output("y", "cpu", 0, np.float32, list(y_dims), y.ctypes.data)
        run_options = self.ort.RunOptions()

        def run(keep=(x, y)):  # the binding holds raw pointers into x and y: keep them alive
            session.run_with_iobinding(binding, run_options)

        return run


class OpenVino:
    def __init__(self, threads):
        import openvino

        self.ov = openvino
        self.version = "openvino " + openvino.__version__.split("-")[0]
        self.core = openvino.Core()
        self.config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                       "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}

    def prepare(self, shape):
        model, x, _ = conv_model(shape)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "conv.onnx")
            with open(path, "wb") as f:
                f.write(model.SerializeToString())
            compiled = self.core.compile_model(self.core.read_model(path), "CPU", self.config)
        precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if "32" not in precision:
            raise RuntimeError("openvino ignored the f32 hint (%s)" % precision)
        request = compiled.create_infer_request()
        request.set_input_tensor(self.ov.Tensor(x, shared_memory=True))

        def run(keep=x):  # the input tensor shares x's memory: keep it alive
            request.infer()

        return run


def make_peer(name, threads):
    return OnnxRuntime(threads) if name == "onnxruntime" else OpenVino(threads)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer", choices=PEERS, required=True)
    p.add_argument("--shapes", required=True, help="convkit_bench --list_shapes output")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.1)
    p.add_argument("--repetitions", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    try:
        peer = make_peer(args.peer, args.threads)
    except ImportError as e:
        print("%s: not installed (%s)" % (args.peer, e), file=sys.stderr)
        return 3
    with open(args.shapes) as f:
        shapes = [json.loads(line) for line in f if line.strip()]
    records = []
    for shape in (s for s in shapes if s["kind"] == "conv"):
        name = "conv2d_fwd/%s/%s/%s/N%d" % (args.peer, shape["set"], shape["name"],
                                            shape["batch"])
        record = {"name": name, "run_name": name, "run_type": "iteration", "time_unit": "us"}
        try:
            seconds, cpu_seconds = time_call(peer.prepare(shape), args.min_time,
                                             args.repetitions)
            record.update({"real_time": seconds * 1e6, "cpu_time": cpu_seconds * 1e6,
                           "GFLOPS": shape["flops"] / seconds / 1e9, "label": peer.version})
            print("%-70s %10.1f us  GFLOPS=%.1f" % (name, seconds * 1e6, record["GFLOPS"]),
                  flush=True)
        except Exception as e:  # a refusal of one shape is a cell, not the end of the run
            record.update({"error_occurred": True, "error_message": "error: %s" % e})
            print("%-70s ERROR %s" % (name, e), flush=True)
        records.append(record)
    with open(args.out, "w") as f:
        json.dump({"peer": args.peer, "version": peer.version, "benchmarks": records}, f,
                  indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
