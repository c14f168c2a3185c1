package io.troupe.runtime.cuda.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.runtime.cuda.Bf16;
import io.troupe.runtime.cuda.CudaAvailability;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import io.troupe.runtime.cuda.GemmBackend;
import io.troupe.runtime.cuda.GemmPrecision;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.io.PrintStream;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * GEMM throughput of the CUDA backend: square n^3 products (default 4096 and 8192) in FP32 (SGEMM on
 * CUDA cores), TF32 and BF16 (tensor cores, BF16 tensors so no conversion is timed), in TFLOP/s, as a
 * fraction of the card's BF16 ceiling (default 790 TFLOP/s, an H200 measured through PyTorch) and as
 * a ratio to Troupe's FP32 kernel measured in the same run; cuBLAS rows follow where JCublas loads. Each product is
 * checked at 32 random entries
 * against a double-precision dot product. Then runs the optional GPT-step hook.
 *
 * <pre>
 *   java -cp ... io.troupe.runtime.cuda.bench.CudaBench [--sizes=4096,8192] [--ceiling-tflops=790]
 *        [--iters=10] [--gpt-hook=CLASS]
 * </pre>
 */
public final class CudaBench {
    private CudaBench() {
    }

    public static void main(String[] args) throws Exception {
        int[] sizes = {4096, 8192};
        double ceiling = 790;
        int iters = 10;
        String hook = null;
        Options o = BenchOptions.parse(args, "cuda",
            "usage: CudaBench [--sizes=N,N] [--ceiling-tflops=X] [--iters=N] [--gpt-hook=CLASS]",
            Set.of("sizes", "ceiling-tflops", "iters", "gpt-hook"), Set.of());
        sizes = o.getInts("sizes", sizes);
        ceiling = o.getDouble("ceiling-tflops", ceiling);
        iters = o.getInt("iters", iters);
        hook = o.get("gpt-hook");
        // Resolved before the GPU check, so a dry run on a machine without a GPU proves the hook loads.
        GptStepHook gptHook = hook == null ? null
            : (GptStepHook) Class.forName(hook).getDeclaredConstructor().newInstance();
        CudaAvailability avail = CudaSupport.availability();
        if (!avail.isAvailable()) {
            System.out.println("CudaBench: no GPU, nothing to measure: " + avail.reason()
                + (gptHook == null ? "" : " (GPT hook " + hook + " loaded)"));
            System.exit(2);
        }
        PrintStream out = System.out;
        try (CudaDevice dev = new CudaDevice(0)) {
            out.printf(Locale.ROOT, "device %s, compute capability %d, %d SMs; ceiling %.0f TFLOP/s (BF16)%n",
                dev.name(), dev.computeCapability(), dev.multiprocessorCount(), ceiling);
            out.println("| n | gemm | ms/product | TFLOP/s | % of ceiling | x FP32 | max rel err (32 samples) |");
            out.println("|---|---|---|---|---|---|---|");
            for (int n : sizes) {
                gemmRow(dev, n, iters, ceiling, out);
            }
            if (gptHook == null) {
                out.println("GPT step: no --gpt-hook given, not run");
            } else {
                gptHook.run(dev, ceiling, out);
            }
        }
    }

    private static void gemmRow(CudaDevice dev, int n, int iters, double ceiling, PrintStream out) {
        Random rnd = new Random(n);
        float[] a = new float[n * n];
        float[] b = new float[n * n];
        for (int i = 0; i < a.length; i++) {
            a[i] = rnd.nextFloat() * 2 - 1;
            b[i] = rnd.nextFloat() * 2 - 1;
        }
        double flops = 2.0 * n * n * (double) n;
        double fp32Ms = 0;
        try (Tensor ta = dev.allocate(n, n); Tensor tb = dev.allocate(n, n); Tensor c = dev.allocate(n, n);
             Tensor ha = dev.allocate(DType.BF16, n, n); Tensor hb = dev.allocate(DType.BF16, n, n)) {
            dev.copyFromHost(a, ta);
            dev.copyFromHost(b, tb);
            dev.copyFromHost(a, ha);
            dev.copyFromHost(b, hb);
            for (int row = 0; row < 2 * GemmPrecision.values().length; row++) {
                GemmPrecision p = GemmPrecision.values()[row % GemmPrecision.values().length];
                GemmBackend backend = row < GemmPrecision.values().length ? GemmBackend.TROUPE : GemmBackend.CUBLAS;
                if (backend == GemmBackend.CUBLAS && !dev.hasCublas()) {
                    if (p == GemmPrecision.FP32) {
                        out.printf(Locale.ROOT, "| %d | cuBLAS | not loaded: %s |%n", n, dev.cublasUnavailableReason());
                    }
                    continue;
                }
                dev.setGemmBackend(backend);
                dev.setGemmPrecision(p);
                boolean bf16 = p == GemmPrecision.BF16;
                Tensor x = bf16 ? ha : ta;
                Tensor y = bf16 ? hb : tb;
                int reps = p == GemmPrecision.FP32 ? Math.max(2, iters / 3) : iters;
                dev.matmul(false, false, n, n, n, 1f, x, y, 0f, c);   // warm-up: module JIT, clocks
                dev.synchronize();
                float ms = dev.timeMs(() -> {
                    for (int r = 0; r < reps; r++) {
                        dev.matmul(false, false, n, n, n, 1f, x, y, 0f, c);
                    }
                }) / reps;
                if (p == GemmPrecision.FP32 && backend == GemmBackend.TROUPE) {
                    fp32Ms = ms;
                }
                double err = sampleError(dev, c, a, b, n, bf16, rnd);
                double tflops = flops / (ms * 1e-3) / 1e12;
                out.printf(Locale.ROOT, "| %d | %s %s | %.3f | %.1f | %.1f%% | %.2f | %.2g |%n", n,
                    backend == GemmBackend.TROUPE ? "troupe" : "cuBLAS", p, ms, tflops,
                    100 * tflops / ceiling, fp32Ms / ms, err);
            }
        }
    }

    /** Largest |C - exact| / (sum |a||b|) over 32 random entries, exact in double on the host. */
    private static double sampleError(CudaDevice dev, Tensor c, float[] a, float[] b, int n, boolean bf16,
                                      Random rnd) {
        float[] host = new float[n * n];
        dev.copyToHost(c, host);
        double worst = 0;
        for (int s = 0; s < 32; s++) {
            int i = rnd.nextInt(n);
            int j = rnd.nextInt(n);
            double exact = 0;
            double mag = 0;
            for (int k = 0; k < n; k++) {
                double x = bf16 ? Bf16.round(a[i * n + k]) : a[i * n + k];
                double y = bf16 ? Bf16.round(b[k * n + j]) : b[k * n + j];
                exact += x * y;
                mag += Math.abs(x * y);
            }
            worst = Math.max(worst, Math.abs(host[i * n + j] - exact) / mag);
        }
        return worst;
    }
}
