package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Runs everywhere: detection never throws, is cached, and explains an absent GPU. */
@Timeout(60)
class CudaSupportTest {

    @Test
    void shouldReportAvailabilityOnceWithoutThrowing() {
        CudaAvailability first = CudaSupport.availability();
        assertSame(first, CudaSupport.availability(), "the probe must run once and be cached");
        assertFalse(first.reason().isBlank(), "a reason is always given");
        System.out.println("CUDA availability: " + first);
        if (first.isAvailable()) {
            assertTrue(first.deviceCount() > 0, first.toString());
        } else {
            assertEquals(0, first.deviceCount());
        }
    }

    @Test
    void shouldRefuseToOpenADeviceWithTheReasonWhenNoGpu() {
        CudaAvailability a = CudaSupport.availability();
        if (a.isAvailable()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new CudaDevice(a.deviceCount()));
            assertTrue(e.getMessage().contains(String.valueOf(a.deviceCount())), e.getMessage());
            return;
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> new CudaDevice(0));
        assertTrue(e.getMessage().contains(a.reason()), e.getMessage());
        System.out.println("new CudaDevice(0) without a GPU: " + e.getMessage());
    }

    @Test
    void shouldProbeAgainWithoutThrowing() {
        // The uncached probe, as a fresh process would run it: no exception, same verdict.
        CudaAvailability again = CudaSupport.probe();
        assertEquals(CudaSupport.availability().isAvailable(), again.isAvailable(), again.toString());
    }
}
