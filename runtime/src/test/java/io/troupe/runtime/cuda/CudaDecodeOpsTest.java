package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.PagedDecodeCase;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The decoding kernels (decode.cu, and the FP32 sgemm behind {@code linearRowInvariant}) on {@code cuda:0}
 * against the CPU reference loops, and their batch invariance on the GPU, bit for bit: a sequence's
 * attention rows alone against the same rows among others, a linear's row alone against it in 16.
 * Skipped, with the reason, where there is no GPU.
 */
@Timeout(120)
class CudaDecodeOpsTest {
    private CpuDevice cpu;
    private CudaDevice gpu;

    @BeforeEach
    void open() {
        CudaTesting.assumeGpu();
        cpu = new CpuDevice(2);
        gpu = new CudaDevice(0);
        gpu.setGemmBackend(gpu.hasCublas() ? GemmBackend.CUBLAS : GemmBackend.TROUPE);
        gpu.setGemmPrecision(GemmPrecision.BF16);   // the linear must ignore both settings
    }

    @AfterEach
    void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    private static List<PagedDecodeCase> cases() {
        return List.of(
            new PagedDecodeCase(1, 4, 8, 4, new int[] {9, 5, 14}, 6, 4),
            new PagedDecodeCase(2, 12, 64, 16, new int[] {200, 3, 64, 17}, 64, 3),
            new PagedDecodeCase(3, 2, 128, 8, new int[] {130, 1}, 33, 2),
            new PagedDecodeCase(4, 3, 130, 5, new int[] {12, 7}, 5, 2));
    }

    @Test
    void shouldMatchTheCpuReferenceWhenAttendingOverPagedCaches() {
        for (PagedDecodeCase c : cases()) {
            double diff = PagedDecodeCase.maxRelDiff(c.run(gpu), c.run(cpu));
            System.out.printf("paged attention cuda vs cpu, %d heads of %d, blocks of %d: max rel diff %.3g%n",
                c.heads, c.headDim, c.blockSize, diff);
            assertTrue(diff < 1e-5, "max rel diff " + diff);
        }
    }

    @Test
    void shouldGiveASequenceTheSameBitsAloneOrAmongOthers() {
        for (PagedDecodeCase c : cases()) {
            List<float[]> all = c.run(gpu);
            for (int seq = 0; seq < 2; seq++) {
                List<float[]> mine = c.rowsOf(seq, all);
                List<float[]> alone = c.onlySequence(seq).run(gpu);
                for (int st = 0; st < mine.size(); st++) {
                    assertArrayEquals(alone.get(st), mine.get(st), "sequence " + seq + ", its step " + st);
                }
            }
        }
    }

    @Test
    void shouldRunTheLinearInOneOrderWhateverTheRowCountAndMatchTheCpu() {
        Random rnd = new Random(5);
        int n = 300;
        int k = 257;
        float[] x = PagedDecodeCase.gaussian(rnd, 16 * k);
        float[] w = PagedDecodeCase.gaussian(rnd, n * k);
        float[] b = PagedDecodeCase.gaussian(rnd, n);
        float[] onGpu = PagedDecodeCase.linear(gpu, 16, n, k, x, w, b);
        float[] onCpu = PagedDecodeCase.linear(cpu, 16, n, k, x, w, b);
        double worst = 0;
        for (int i = 0; i < onGpu.length; i++) {
            worst = Math.max(worst, Math.abs(onGpu[i] - onCpu[i]) / (1 + Math.abs(onCpu[i])));
        }
        System.out.printf("linearRowInvariant cuda vs cpu: max rel diff %.3g%n", worst);
        assertTrue(worst < 1e-5, "max rel diff " + worst);
        for (int rows : new int[] {1, 6, 13}) {
            float[] some = PagedDecodeCase.linear(gpu, rows, n, k, Arrays.copyOf(x, rows * k), w, b);
            assertArrayEquals(Arrays.copyOf(onGpu, rows * n), some, rows + " rows against 16");
        }
    }
}
