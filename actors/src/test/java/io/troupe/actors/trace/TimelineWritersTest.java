package io.troupe.actors.trace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.schedule.CostModel;
import io.troupe.actors.schedule.PipelineSimulator;
import io.troupe.actors.schedule.Schedules;
import io.troupe.actors.schedule.SimulationResult;
import java.io.ByteArrayInputStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.w3c.dom.Document;

@Timeout(30)
class TimelineWritersTest {

    private static Timeline sample() {
        SimulationResult r = new PipelineSimulator(CostModel.uniform(4, 1, 1, 1).withLink(0.1, 1e9))
                .run(Schedules.zbH1(4, 8).asPolicy());
        return new Timeline("zb-h1 \"p=4\" <m=8>", r.timeline().tracks());
    }

    @Test
    void shouldWriteOneCompleteEventPerIntervalWithThreadNames() throws Exception {
        Timeline t = sample();
        StringWriter out = new StringWriter();
        ChromeTraceWriter.write(t, out);
        String json = out.toString();
        int intervals = 0;
        for (TimelineTrack track : t.tracks()) {
            intervals += track.intervals().size();
        }
        assertEquals(intervals, count(json, "\"ph\":\"X\""));
        assertEquals(t.tracks().size(), count(json, "\"name\":\"thread_name\""));
        assertEquals(2, count(json, "\"name\":\"process_name\""), "pipeline and links");
        assertTrue(json.contains("\"args\":{\"name\":\"stage 3\"}"));
        assertTrue(json.contains("\"title\":\"zb-h1 \\\"p=4\\\" <m=8>\""), "title escaped");
        // the first F of stage 0 starts at 0 and lasts 1 us
        assertTrue(json.contains("{\"name\":\"F(mb=0, v=0)\",\"cat\":\"F\",\"ph\":\"X\",\"ts\":0.000,\"dur\":1.000,"
                + "\"pid\":1,\"tid\":1"), json.substring(0, 600));
        // brackets balance outside strings: a cheap well-formedness check
        assertEquals(0, balance(json));
    }

    @Test
    void shouldRenderWellFormedSvgWithOneRowPerTrackAndLabels() throws Exception {
        Timeline t = sample();
        String svg = TimelineSvg.render(t);
        Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder()
                .parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
        assertEquals("svg", doc.getDocumentElement().getNodeName());
        assertTrue(svg.contains("zb-h1 &quot;p=4&quot; &lt;m=8&gt;"));
        for (TimelineTrack track : t.tracks()) {
            assertTrue(svg.contains(">" + track.name() + "</text>"), track.name());
        }
        assertTrue(svg.contains("F forward") && svg.contains("W weight grad") && svg.contains("idle: input"));
        assertTrue(svg.contains(">7</text>"), "micro-batch numbers in boxes");
    }

    @Test
    void shouldPickRoundAxisSteps() {
        assertEquals(1.0, TimelineSvg.niceStep(0.9), 1e-12);
        assertEquals(2.0, TimelineSvg.niceStep(1.3), 1e-12);
        assertEquals(50.0, TimelineSvg.niceStep(31.0), 1e-12);
    }

    @Test
    void shouldRejectIntervalsThatEndBeforeTheyStart() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new TimelineInterval("F0", "F", 2.0, 1.0, "0", Map.of()));
        assertTrue(e.getMessage().contains("startUs=2.0"), e.getMessage());
        assertEquals(0.0, new Timeline("empty", List.of()).endUs());
    }

    private static int count(String s, String needle) {
        Matcher m = Pattern.compile(Pattern.quote(needle)).matcher(s);
        int n = 0;
        while (m.find()) {
            n++;
        }
        return n;
    }

    private static int balance(String json) {
        int depth = 0;
        boolean inString = false;
        for (int i = 0; i < json.length(); i++) {
            char c = json.charAt(i);
            if (inString) {
                if (c == '\\') {
                    i++;
                } else if (c == '"') {
                    inString = false;
                }
            } else if (c == '"') {
                inString = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                depth--;
                if (depth < 0) {
                    return -1;
                }
            }
        }
        return depth;
    }
}
