package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@code troupe.serve.stage-link} read into {@link StageLinks}: the defaults, overrides, and bad values named. */
class StageLinksTest {
    private static StageLinks read(String hocon) {
        Config c = ConfigFactory.parseString(hocon).withFallback(ConfigFactory.defaultReference()).resolve();
        return StageLinks.from(c, List.of("127.0.0.1:7355"));
    }

    @Test
    void shouldReadTheDefaultsOfReferenceConf() {
        StageLinks l = read("");
        assertEquals(Duration.ofSeconds(5), l.lossTimeout());
        assertEquals(Duration.ofSeconds(60), l.connectTimeout());
        assertEquals(Duration.ofSeconds(1), l.retryInterval());
        assertEquals(Duration.ofSeconds(30), l.stepTimeout(), "a normal step, or a long prefill, never trips it");
    }

    @Test
    void shouldReadAStepTimeoutSetInHocon() {
        StageLinks l = read("troupe.serve.stage-link.step-timeout = 1500ms");
        assertEquals(Duration.ofMillis(1500), l.stepTimeout());
        assertEquals(Duration.ofMillis(1500), l.at("127.0.0.1", 7355).stepTimeout(), "kept on a host's own address");
    }

    @Test
    void shouldRefuseAStepTimeoutThatIsNotPositiveNamingIt() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
            () -> read("troupe.serve.stage-link.step-timeout = 0s"));
        assertEquals("troupe.serve.stage-link.step-timeout must be > 0: step-timeout=0ms", zero.getMessage());
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
            () -> read("troupe.serve.stage-link.step-timeout = -2s"));
        assertEquals("troupe.serve.stage-link.step-timeout must be > 0: step-timeout=-2000ms", negative.getMessage());
        IllegalArgumentException loss = assertThrows(IllegalArgumentException.class,
            () -> read("troupe.serve.stage-link.loss-timeout = 0s"));
        assertEquals("troupe.serve.stage-link.loss-timeout must be > 0: loss-timeout=0ms", loss.getMessage());
    }

    @Test
    void shouldRefuseAStepTimeoutThatIsNotADurationNamingTheKeyAndTheValue() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> read("troupe.serve.stage-link.step-timeout = soon"));
        assertTrue(e.getMessage().startsWith("bad troupe.serve.stage-link setting: ")
            && e.getMessage().contains("step-timeout") && e.getMessage().contains("soon"), e.getMessage());
    }
}
