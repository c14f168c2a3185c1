package io.troupe.actors.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The strict exposition-format reader the scraping tests use: what it accepts and what it refuses. */
class PrometheusTextTest {
    private static final String GOOD = """
        # HELP a_total Things, with a \\\\ and a \\n.
        # TYPE a_total counter
        a_total{reason="x \\"q\\" \\\\ \\n",b="2"} 3
        a_total{reason="y"} 0 1700000000000
        # TYPE g gauge
        g NaN
        g{x="1"} -Inf
        # TYPE h_seconds histogram
        h_seconds_bucket{le="0.5"} 1
        h_seconds_bucket{le="1.0"} 2
        h_seconds_bucket{le="+Inf"} 2
        h_seconds_sum 1.25
        h_seconds_count 2
        # TYPE s_seconds summary
        s_seconds{quantile="0.5"} 1e-3
        s_seconds_sum 3
        s_seconds_count 4
        """;

    @Test
    void shouldReadAWellFormedText() {
        PrometheusText p = PrometheusText.check(GOOD);
        assertEquals(3, p.value("a_total{reason=\"x \\\"q\\\" \\\\ \\n\",b=\"2\"}"));
        assertTrue(Double.isNaN(p.value("g")));
        assertEquals(2, p.value("h_seconds_count"));
    }

    @Test
    void shouldRefuseEachViolation() {
        String[][] bad = {
            {"no trailing newline", "# TYPE g gauge\ng 1"},
            {"bad metric name", "# TYPE 1g gauge\n1g 1\n"},
            {"bad metric name in a sample", "g-x 1\n"},
            {"bad label name", "g{a-b=\"1\"} 1\n"},
            {"reserved label name", "g{__a=\"1\"} 1\n"},
            {"unquoted label value", "g{a=1} 1\n"},
            {"bad escape", "g{a=\"\\t\"} 1\n"},
            {"raw quote", "g{a=\"x\"y\"} 1\n"},
            {"label twice", "g{a=\"1\",a=\"2\"} 1\n"},
            {"Infinity", "g Infinity\n"},
            {"NaN spelt otherwise", "g nan\n"},
            {"bad value", "g 1,5\n"},
            {"TYPE twice", "# TYPE g gauge\n# TYPE g gauge\ng 1\n"},
            {"HELP twice", "# HELP g x\n# HELP g y\ng 1\n"},
            {"TYPE after samples", "g 1\n# TYPE g gauge\n"},
            {"split family", "# TYPE g gauge\ng{a=\"1\"} 1\nh 2\ng{a=\"2\"} 1\n"},
            {"repeated series", "g{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 1\n"},
            {"negative counter", "# TYPE c_total counter\nc_total -1\n"},
            {"bad HELP escape", "# HELP g a \\t b\ng 1\n"},
            {"unknown type", "# TYPE g meter\ng 1\n"},
            {"not cumulative", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
                + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"},
            {"le not sorted", "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                + "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"},
            {"no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"},
            {"+Inf != count", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"},
            {"no sum", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n"},
            {"foreign sample in a histogram", "# TYPE h histogram\nh 1\n"},
            {"quantile outside [0, 1]", "# TYPE s summary\ns{quantile=\"2\"} 1\ns_sum 1\ns_count 1\n"},
        };
        for (String[] b : bad) {
            assertThrows(AssertionError.class, () -> PrometheusText.check(b[1]), b[0]);
        }
    }
}
