package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The staging contract on {@code cuda:0}: pinned host tensors, uploads and downloads on the copy
 * stream ordered by events. The ordering test reads a 2048 x 2048 input with ten FP32 GEMMs while the
 * next upload of the same buffer is queued, so an upload that did not wait for its readers shows.
 */
class CudaStagingContractTest extends StagingContractTest {
    @Override
    Device openDevice() {
        if (!CudaSupport.isAvailable()) {
            return null;
        }
        CudaDevice dev = new CudaDevice(0);
        dev.setGemmBackend(GemmBackend.TROUPE);
        dev.setGemmPrecision(GemmPrecision.FP32);   // exact on the integer data of the ordering test
        return dev;
    }

    @Override
    String skipReason() {
        return CudaTesting.SKIP_PREFIX + CudaSupport.availability().reason();
    }

    @Override
    int orderingSize() {
        // The emulator runs each stream's work at the call, in issue order: the ordering is not what it
        // checks there, and ten 2048^3 products would take it minutes.
        return CudaSupport.isEmulated() ? 128 : 2048;
    }

    @Test
    void shouldKeepTheDownloadedValuesWhenTheSourceIsOverwritten() {
        Device dev = device();
        int n = 1 << 22;   // 16 MiB: the copy takes long enough for the fill to be queued behind the snapshot
        Tensor src = track(dev.allocate(n));
        float[] p = pattern(n, 7);
        dev.copyFromHost(p, src);
        StagedOutput out = track(dev.openStagedOutput(DType.F32, n));
        out.download(src);
        dev.fill(src, Float.NaN);   // issued at once, before the download has completed
        out.await();
        assertArrayEquals(p, out.host().toFloatArray());
    }
}
