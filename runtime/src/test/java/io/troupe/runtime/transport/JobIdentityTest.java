package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/** The job identity value, its place in the frame header and the decoder's refusal of other jobs. */
class JobIdentityTest {

    @Test
    void shouldJudgeCurrentNewerStaleAndOtherJobs() {
        JobIdentity a = new JobIdentity(0x1234abcd, 3);
        assertEquals(JobIdentity.Verdict.CURRENT, a.judge(0x1234abcd, 3));
        assertEquals(JobIdentity.Verdict.NEWER_EPOCH, a.judge(a.nextEpoch()));
        assertEquals(JobIdentity.Verdict.STALE_EPOCH, a.judge(0x1234abcd, 2));
        assertEquals(JobIdentity.Verdict.OTHER_JOB, a.judge(0x1234abce, 3));
        assertEquals(JobIdentity.Verdict.OTHER_JOB, a.judge(JobIdentity.NONE));
        assertEquals(JobIdentity.Verdict.OTHER_JOB, JobIdentity.NONE.judge(a));
        assertEquals("job 1234abcd epoch 3", a.toString());
        assertEquals(0x1234abcd, JobIdentity.parseId(a.idHex()));
    }

    @Test
    void shouldNeverLowerAnEpochNorAcceptAJobWithoutOne() {
        JobIdentity a = new JobIdentity(7, 5);
        IllegalArgumentException back = assertThrows(IllegalArgumentException.class, () -> a.atEpoch(4));
        assertTrue(back.getMessage().contains("epoch 4"), back.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new JobIdentity(7, -1));
        assertThrows(IllegalArgumentException.class, () -> new JobIdentity(JobIdentity.NO_JOB, 0));
        for (int i = 0; i < 1000; i++) {
            JobIdentity fresh = JobIdentity.newJob(0);
            assertTrue(fresh.isJob());
            assertNotEquals(JobIdentity.NO_JOB, fresh.jobId());
        }
    }

    @Test
    void shouldCarryTheJobIdInTheHeaderAndRefuseOtherJobsAsWellFormed() {
        UnsafeBuffer buf = new UnsafeBuffer(BufferUtil.allocateDirectAligned(256, 64));
        TensorFrameFlyweight f = new TensorFrameFlyweight().wrap(buf, 0);
        f.writeHeader(FrameKind.ACTIVATION, DType.F32, TensorFrameDescriptor.FLAG_CRC, 0xfeedbeef, 4, 9, 2, 3,
            TensorKey.of(1, 0, 0), new int[] {4}, 1, 16, 0, 16);
        f.sealCrc(0);
        assertEquals(3, TensorFrameDescriptor.VERSION);
        assertEquals(0xfeedbeef, f.jobId());
        assertEquals(0xfeedbeef, buf.getInt(TensorFrameDescriptor.JOB_ID_OFFSET, java.nio.ByteOrder.LITTLE_ENDIAN));
        int length = TensorFrameDescriptor.HEADER_LENGTH + 16;
        TensorFrameDecoder d = new TensorFrameDecoder(false);
        assertNull(d.decode(buf, 0, length, true, 0xfeedbeefL, 4, 3, 2, 1 << 20));
        assertEquals(0xfeedbeef, d.jobId());
        DropReason other = d.decode(buf, 0, length, true, 0x0badcafeL, 4, 3, 2, 1 << 20);
        assertEquals(DropReason.WRONG_JOB, other);
        assertTrue(other.wellFormed(), "a refused job's frame is whole: its ring bytes can be released");
        assertEquals(DropReason.STALE_EPOCH, d.decode(buf, 0, length, true, 0xfeedbeefL, 5, 3, 2, 1 << 20));
        assertNull(d.decode(buf, 0, length, true, TensorFrameDecoder.ANY_JOB, 4, 3, 2, 1 << 20));
        TensorFrameFlyweight tool = new TensorFrameFlyweight().wrap(buf, 0);
        tool.writeHeader(FrameKind.ACTIVATION, DType.F32, 0, 4, 9, 2, 3, TensorKey.of(1, 0, 0), new int[] {4}, 1, 16, 0,
            16);
        assertEquals(JobIdentity.NO_JOB, tool.jobId());
        assertEquals(DropReason.WRONG_JOB, d.decode(buf, 0, length, true, 0xfeedbeefL, 4, 3, 2, 1 << 20));
    }
}
