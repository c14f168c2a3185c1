package io.troupe.actors.trace;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Set;

/**
 * Draws a {@link Timeline} as an SVG Gantt chart in the style of the 1F1B and Zero Bubble papers: one
 * row per track, F/B/W/BW boxes in distinct colours with the micro-batch number inside, idle gaps
 * hatched (a tint per cause), a time axis, a legend, and the timeline's title on top. Intervals on a
 * virtual stage {@code v} (the {@code "v"} arg) other than 0 are drawn in a lighter tint of their
 * colour, so interleaved chunks can be told apart. Stateless and thread-safe.
 */
public final class TimelineSvg {
    private static final int MIN_LEFT_PX = 64;
    private static final int RIGHT_PX = 24;
    private static final int ROW_PX = 26;
    private static final int ROW_GAP_PX = 4;
    private static final int MIN_PLOT_PX = 640;
    private static final int MAX_PLOT_PX = 1800;
    private static final double CHAR_PX = 6.6;
    private static final double LEGEND_CHAR_PX = 7.4;

    private TimelineSvg() {
    }

    /** Writes the chart of {@code timeline} to {@code file} (UTF-8), replacing it. */
    public static void write(Timeline timeline, Path file) throws IOException {
        Files.writeString(file, render(timeline), StandardCharsets.UTF_8);
    }

    /** The chart of {@code timeline} as an SVG document. */
    public static String render(Timeline timeline) {
        double endUs = Math.max(timeline.endUs(), 1e-9);
        int busiestRow = 1;
        Set<String> categories = new LinkedHashSet<>();
        Set<String> idleCauses = new LinkedHashSet<>();
        boolean anyVirtual = false;
        int longestName = 0;
        for (TimelineTrack t : timeline.tracks()) {
            longestName = Math.max(longestName, t.name().length());
            int boxes = 0;
            for (TimelineInterval i : t.intervals()) {
                if (isIdle(i)) {
                    idleCauses.add(i.args().getOrDefault("cause", "idle"));
                } else {
                    categories.add(i.category());
                    anyVirtual |= !"0".equals(i.args().getOrDefault("v", "0"));
                    boxes++;
                }
            }
            busiestRow = Math.max(busiestRow, boxes);
        }
        int leftPx = Math.max(MIN_LEFT_PX, (int) Math.ceil(longestName * 7.0) + 16);
        int plotPx = Math.max(MIN_PLOT_PX, Math.min(MAX_PLOT_PX, busiestRow * 26));
        double pxPerUs = plotPx / endUs;
        int rows = timeline.tracks().size();
        int top = 64;
        int axisY = top + rows * (ROW_PX + ROW_GAP_PX) + 2;
        int width = Math.max(leftPx + plotPx, leftPx + legendPx(categories, idleCauses, anyVirtual)) + RIGHT_PX;
        int height = axisY + 44;

        StringBuilder svg = new StringBuilder(4096 + rows * busiestRow * 160);
        svg.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").append(width).append("\" height=\"")
                .append(height).append("\" viewBox=\"0 0 ").append(width).append(' ').append(height)
                .append("\" font-family=\"Helvetica, Arial, sans-serif\">\n");
        defs(svg);
        svg.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        svg.append("<text x=\"").append(leftPx).append("\" y=\"22\" font-size=\"16\" font-weight=\"bold\">")
                .append(escape(timeline.title())).append("</text>\n");
        legend(svg, categories, idleCauses, anyVirtual, leftPx, 44);

        for (int r = 0; r < rows; r++) {
            TimelineTrack track = timeline.tracks().get(r);
            int y = top + r * (ROW_PX + ROW_GAP_PX);
            svg.append("<text x=\"").append(leftPx - 8).append("\" y=\"").append(y + ROW_PX / 2 + 4)
                    .append("\" font-size=\"12\" text-anchor=\"end\">").append(escape(track.name())).append(
                        "</text>\n");
            svg.append("<rect x=\"").append(leftPx).append("\" y=\"").append(y).append("\" width=\"").append(plotPx)
                    .append("\" height=\"").append(ROW_PX).append(
                        "\" fill=\"#fafafa\" stroke=\"#d0d0d0\" stroke-width=\"0.5\"/>\n");
            for (TimelineInterval i : track.intervals()) {
                box(svg, i, leftPx + i.startUs() * pxPerUs, y, i.durationUs() * pxPerUs);
            }
        }
        axis(svg, leftPx, endUs, pxPerUs, axisY, plotPx);
        svg.append("</svg>\n");
        return svg.toString();
    }

    private static void defs(StringBuilder svg) {
        svg.append("<defs>\n");
        for (String cause : new String[] {"input", "communication", "memory_cap", "drained", "idle"}) {
            svg.append("<pattern id=\"idle-").append(cause).append("\" width=\"6\" height=\"6\" ")
                    .append("patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">")
                    .append("<rect width=\"6\" height=\"6\" fill=\"").append(idleTint(cause)).append("\"/>")
                    .append("<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b8b8b8\" stroke-width=\"1.5\"/>")
                    .append("</pattern>\n");
        }
        svg.append("</defs>\n");
    }

    private static void box(StringBuilder svg, TimelineInterval i, double x, int y, double w) {
        if (w <= 0.0) {
            return;
        }
        if (isIdle(i)) {
            String cause = i.args().getOrDefault("cause", "idle");
            svg.append("<rect x=\"").append(fmt(x)).append("\" y=\"").append(y + 2).append("\" width=\"")
                    .append(fmt(w)).append("\" height=\"").append(ROW_PX - 4).append("\" fill=\"url(#idle-")
                    .append(patternId(cause)).append(")\"><title>").append(escape(i.name())).append(' ')
                    .append(fmt(i.startUs())).append('-').append(fmt(i.endUs())).append("</title></rect>\n");
            return;
        }
        boolean light = !"0".equals(i.args().getOrDefault("v", "0"));
        String fill = light ? lighten(colour(i.category())) : colour(i.category());
        svg.append("<rect x=\"").append(fmt(x)).append("\" y=\"").append(y).append("\" width=\"").append(fmt(w))
                .append("\" height=\"").append(ROW_PX).append("\" fill=\"").append(fill)
                .append("\" stroke=\"#333\" stroke-width=\"").append(w > 4 ? "0.6" : "0").append("\"><title>")
                .append(escape(i.name())).append(' ').append(fmt(i.startUs())).append('-').append(fmt(i.endUs()))
                .append("</title></rect>\n");
        String label = i.label();
        if (!label.isEmpty() && w >= label.length() * CHAR_PX + 3) {
            svg.append("<text x=\"").append(fmt(x + w / 2)).append("\" y=\"").append(y + ROW_PX / 2 + 4)
                    .append("\" font-size=\"11\" text-anchor=\"middle\" fill=\"")
                    .append(light || darkText(i.category()) ? "#111" : "white").append("\">").append(escape(label))
                    .append("</text>\n");
        }
    }

    private static void legend(StringBuilder svg, Set<String> categories, Set<String> idleCauses, boolean anyVirtual,
                               int x0, int y) {
        double x = x0;
        for (String c : categories) {
            svg.append("<rect x=\"").append(fmt(x)).append("\" y=\"").append(y - 10)
                    .append("\" width=\"14\" height=\"12\" fill=\"").append(colour(c))
                    .append("\" stroke=\"#333\" stroke-width=\"0.6\"/>");
            svg.append("<text x=\"").append(fmt(x + 18)).append("\" y=\"").append(y).append("\" font-size=\"12\">")
                    .append(escape(describe(c))).append("</text>\n");
            x += 26 + describe(c).length() * LEGEND_CHAR_PX;
        }
        if (anyVirtual) {
            String text = "light: virtual stage 1+";
            svg.append("<text x=\"").append(fmt(x)).append("\" y=\"").append(y)
                    .append("\" font-size=\"12\" fill=\"#555\">").append(text).append("</text>\n");
            x += 12 + text.length() * LEGEND_CHAR_PX;
        }
        for (String cause : idleCauses) {
            svg.append("<rect x=\"").append(fmt(x)).append("\" y=\"").append(y - 10)
                    .append("\" width=\"14\" height=\"12\" fill=\"url(#idle-").append(patternId(cause))
                    .append(")\" stroke=\"#999\" stroke-width=\"0.6\"/>");
            String text = "idle: " + cause.replace('_', ' ');
            svg.append("<text x=\"").append(fmt(x + 18)).append("\" y=\"").append(y).append("\" font-size=\"12\">")
                    .append(escape(text)).append("</text>\n");
            x += 26 + text.length() * LEGEND_CHAR_PX;
        }
    }

    private static int legendPx(Set<String> categories, Set<String> idleCauses, boolean anyVirtual) {
        double x = 0;
        for (String c : categories) {
            x += 26 + describe(c).length() * LEGEND_CHAR_PX;
        }
        if (anyVirtual) {
            x += 12 + "light: virtual stage 1+".length() * LEGEND_CHAR_PX;
        }
        for (String cause : idleCauses) {
            x += 26 + ("idle: " + cause).length() * LEGEND_CHAR_PX;
        }
        return (int) Math.ceil(x);
    }

    private static void axis(StringBuilder svg, int leftPx, double endUs, double pxPerUs, int y, int plotPx) {
        svg.append("<line x1=\"").append(leftPx).append("\" y1=\"").append(y).append("\" x2=\"")
                .append(leftPx + plotPx).append("\" y2=\"").append(y).append("\" stroke=\"#333\"/>\n");
        double step = niceStep(endUs / 10.0);
        for (double t = 0.0; t <= endUs * (1 + 1e-9); t += step) {
            double x = leftPx + t * pxPerUs;
            svg.append("<line x1=\"").append(fmt(x)).append("\" y1=\"").append(y).append("\" x2=\"").append(fmt(x))
                    .append("\" y2=\"").append(y + 5).append("\" stroke=\"#333\"/>");
            svg.append("<text x=\"").append(fmt(x)).append("\" y=\"").append(y + 18)
                    .append("\" font-size=\"11\" text-anchor=\"middle\">").append(fmt(t)).append("</text>\n");
        }
        svg.append("<text x=\"").append(leftPx + plotPx).append("\" y=\"").append(y + 36)
                .append("\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">time (us)</text>\n");
    }

    static double niceStep(double raw) {
        if (!(raw > 0.0)) {
            return 1.0;
        }
        double pow = Math.pow(10, Math.floor(Math.log10(raw)));
        double f = raw / pow;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
    }

    private static boolean isIdle(TimelineInterval i) {
        return "idle".equals(i.category());
    }

    private static String patternId(String cause) {
        return switch (cause) {
            case "input", "communication", "memory_cap", "drained" -> cause;
            default -> "idle";
        };
    }

    private static String idleTint(String cause) {
        return switch (cause) {
            case "communication" -> "#fde7cf";
            case "memory_cap" -> "#f9d4d4";
            case "drained" -> "#e4e4e4";
            default -> "#ffffff";
        };
    }

    private static String describe(String category) {
        return switch (category) {
            case "F" -> "F forward";
            case "B" -> "B input grad";
            case "W" -> "W weight grad";
            case "BW" -> "BW backward (B+W)";
            default -> category;
        };
    }

    private static String colour(String category) {
        return switch (category) {
            case "F" -> "#4e79d6";
            case "B" -> "#1f9e89";
            case "W" -> "#a6d96a";
            case "BW" -> "#2e8b57";
            case "send" -> "#f28e2b";
            case "recv" -> "#f7c59f";
            case "allreduce" -> "#b07aa1";
            default -> "#9d9d9d";
        };
    }

    private static boolean darkText(String category) {
        return "W".equals(category) || "recv".equals(category);
    }

    /** Mixes a #rrggbb colour halfway with white. */
    private static String lighten(String hex) {
        int rgb = Integer.parseInt(hex.substring(1), 16);
        int r = (((rgb >> 16) & 0xff) + 255) / 2;
        int g = (((rgb >> 8) & 0xff) + 255) / 2;
        int b = ((rgb & 0xff) + 255) / 2;
        return String.format(Locale.ROOT, "#%02x%02x%02x", r, g, b);
    }

    private static String fmt(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return String.format(Locale.ROOT, "%.2f", v);
    }

    static String escape(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '<' -> sb.append("&lt;");
                case '>' -> sb.append("&gt;");
                case '&' -> sb.append("&amp;");
                case '"' -> sb.append("&quot;");
                default -> sb.append(c);
            }
        }
        return sb.toString();
    }
}
