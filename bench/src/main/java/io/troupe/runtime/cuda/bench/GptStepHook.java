package io.troupe.runtime.cuda.bench;

import io.troupe.runtime.cuda.CudaDevice;
import java.io.PrintStream;

/**
 * The GPT-step part of {@link CudaBench}, supplied by a module above runtime (models owns the GPT):
 * {@code CudaBench --gpt-hook=com.example.MyHook} loads the class by name (public no-arg
 * constructor) and calls it after the GEMM table. It should time training steps for the small, big
 * and GPT-2-medium (d_model 1024, 24 layers, seq 1024) configurations on {@code device} and print
 * tokens/s and model FLOPs utilisation against {@code ceilingTflops}.
 */
public interface GptStepHook {
    void run(CudaDevice device, double ceilingTflops, PrintStream out);
}
