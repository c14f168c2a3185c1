package io.troupe.actors.cluster;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The workers a coordinator knows, by handle {@code W} (an actor ref; anything in tests), with their
 * descriptions and which nodes the failure detector holds unreachable. Ranks go to workers ordered
 * by node address, then local index, so a plan is the same whichever order workers registered in.
 * Plain class, one thread (the coordinator's).
 */
public final class Membership<W> {
    private final Map<W, WorkerDescription> known = new LinkedHashMap<>();
    private final Set<String> unreachableNodes = new HashSet<>();

    public void add(W worker, WorkerDescription d) {
        known.put(worker, d);
    }

    /** Forgets a worker; returns its description or null. */
    public WorkerDescription remove(W worker) {
        return known.remove(worker);
    }

    /** Forgets every worker of node {@code address} (removed from the cluster); returns them in rank order. */
    public List<W> removeNode(String address) {
        List<W> gone = onNode(address);
        gone.forEach(known::remove);
        unreachableNodes.remove(address);
        return gone;
    }

    public void unreachable(String address) {
        unreachableNodes.add(address);
    }

    public void reachable(String address) {
        unreachableNodes.remove(address);
    }

    /** The known workers of node {@code address}, in rank order. */
    public List<W> onNode(String address) {
        List<W> out = new ArrayList<>();
        for (W w : ordered(false)) {
            if (known.get(w).nodeAddress().equals(address)) {
                out.add(w);
            }
        }
        return out;
    }

    public boolean contains(W worker) {
        return known.containsKey(worker);
    }

    public WorkerDescription describe(W worker) {
        return known.get(worker);
    }

    public int size() {
        return known.size();
    }

    /** Workers on reachable nodes, in rank order. */
    public List<W> usable() {
        return ordered(true);
    }

    private List<W> ordered(boolean reachableOnly) {
        List<Map.Entry<W, WorkerDescription>> order = new ArrayList<>();
        for (Map.Entry<W, WorkerDescription> e : known.entrySet()) {
            if (!reachableOnly || !unreachableNodes.contains(e.getValue().nodeAddress())) {
                order.add(e);
            }
        }
        order.sort(Comparator.comparing((Map.Entry<W, WorkerDescription> e) -> e.getValue().nodeAddress())
            .thenComparingInt(e -> e.getValue().localIndex()));
        List<W> out = new ArrayList<>();
        for (Map.Entry<W, WorkerDescription> e : order) {
            out.add(e.getKey());
        }
        return out;
    }

    /** The ranks (indices into {@code ranks}) whose worker lives on node {@code address}. */
    public List<Integer> ranksOn(List<W> ranks, String address) {
        List<Integer> out = new ArrayList<>();
        for (int r = 0; r < ranks.size(); r++) {
            WorkerDescription d = known.get(ranks.get(r));
            if (d != null && d.nodeAddress().equals(address)) {
                out.add(r);
            }
        }
        return out;
    }
}
