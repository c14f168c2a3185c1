package io.troupe.models.train;

import java.util.List;
import java.util.Locale;

/** Renders training and validation loss against step as a self-contained SVG line chart. */
public final class LossChart {
    private static final int W = 760;
    private static final int H = 420;
    private static final int LEFT = 70;
    private static final int RIGHT = 30;
    private static final int TOP = 50;
    private static final int BOTTOM = 60;

    private LossChart() {
    }

    public static String svg(String title, List<StepMetrics> history) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                + "font-family=\"Helvetica, Arial, sans-serif\">%n", W, H, W, H));
        sb.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        sb.append(String.format(Locale.ROOT,
            "<text x=\"%d\" y=\"28\" font-size=\"16\" font-weight=\"bold\">%s</text>%n",
            LEFT, escape(title)));
        if (history.isEmpty()) {
            return sb.append("<text x=\"70\" y=\"200\">no steps recorded</text></svg>\n").toString();
        }
        double minY = Double.POSITIVE_INFINITY;
        double maxY = Double.NEGATIVE_INFINITY;
        for (StepMetrics m : history) {
            for (double v : new double[] {m.loss(), m.valLoss()}) {
                if (Double.isFinite(v)) {
                    minY = Math.min(minY, v);
                    maxY = Math.max(maxY, v);
                }
            }
        }
        if (maxY - minY < 1e-6) {
            maxY = minY + 1;
        }
        double pad = (maxY - minY) * 0.05;
        minY -= pad;
        maxY += pad;
        long minX = history.get(0).step();
        long maxX = Math.max(minX + 1, history.get(history.size() - 1).step());
        int plotW = W - LEFT - RIGHT;
        int plotH = H - TOP - BOTTOM;
        // Grid and y ticks.
        for (int i = 0; i <= 5; i++) {
            double v = minY + (maxY - minY) * i / 5;
            double y = TOP + plotH - plotH * i / 5.0;
            sb.append(String.format(Locale.ROOT,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>%n",
                LEFT, y, W - RIGHT, y));
            sb.append(String.format(Locale.ROOT,
                "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3f</text>%n",
                LEFT - 6, y + 4, v));
        }
        for (int i = 0; i <= 5; i++) {
            long s = minX + (maxX - minX) * i / 5;
            double x = LEFT + plotW * i / 5.0;
            sb.append(String.format(Locale.ROOT,
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>%n",
                x, H - BOTTOM + 18, s));
        }
        sb.append(String.format(Locale.ROOT,
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>%n",
            LEFT, TOP, plotW, plotH));
        sb.append(String.format(Locale.ROOT,
            "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">step</text>%n",
            LEFT + plotW / 2, H - 18));
        sb.append(String.format(Locale.ROOT,
            "<text x=\"18\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\""
                + " transform=\"rotate(-90 18 %d)\">loss (nats/token)</text>%n",
            TOP + plotH / 2, TOP + plotH / 2));
        StringBuilder train = new StringBuilder();
        StringBuilder val = new StringBuilder();
        for (StepMetrics m : history) {
            double x = LEFT + plotW * (double) (m.step() - minX) / (maxX - minX);
            if (Double.isFinite(m.loss())) {
                train.append(String.format(Locale.ROOT, "%.1f,%.1f ", x,
                    TOP + plotH * (maxY - m.loss()) / (maxY - minY)));
            }
            if (Double.isFinite(m.valLoss())) {
                double y = TOP + plotH * (maxY - m.valLoss()) / (maxY - minY);
                val.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
                sb.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#d62728\"/>%n",
                    x, y));
            }
        }
        sb.append("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.8\" points=\"")
            .append(train).append("\"/>\n");
        if (val.length() > 0) {
            sb.append("<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.2\" stroke-dasharray=\"5,3\""
                + " points=\"")
                .append(val).append("\"/>\n");
        }
        int lx = W - RIGHT - 160;
        sb.append(String.format(Locale.ROOT,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" stroke-width=\"2\"/>%n",
            lx, TOP + 16, lx + 24, TOP + 16));
        sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"12\">train loss</text>%n",
            lx + 30, TOP + 20));
        sb.append(String.format(Locale.ROOT, "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"#d62728\"/>%n",
            lx + 12, TOP + 36));
        sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"12\">validation loss</text>%n",
            lx + 30, TOP + 40));
        return sb.append("</svg>\n").toString();
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }
}
