package io.troupe.actors.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Which activation slot of each chunk of a {@link StageWorker} holds the saved activations of which
 * micro-batch. A forward takes a slot (a freed one first, else a new one); the micro-batch's weight
 * gradient frees it, so a chunk's slot count follows the schedule's peak of live activations. Used only
 * on the worker's compute thread.
 */
final class ActivationSlots {
    private final List<ArrayDeque<Integer>> freeSlots = new ArrayList<>();
    private final Map<Long, Integer> slotOf = new HashMap<>();
    private final int[] nextSlot;

    /** Slots for {@code chunks} chunks, none taken. */
    ActivationSlots(int chunks) {
        this.nextSlot = new int[chunks];
        for (int c = 0; c < chunks; c++) {
            freeSlots.add(new ArrayDeque<>());
        }
    }

    /** A slot of chunk {@code v} for micro-batch {@code mb}'s forward. */
    int take(int v, int mb) {
        ArrayDeque<Integer> free = freeSlots.get(v);
        int slot = free.isEmpty() ? nextSlot[v]++ : free.pop();
        slotOf.put(slotKey(v, mb), slot);
        return slot;
    }

    /** The slot that micro-batch {@code mb} holds in chunk {@code v}. */
    int of(int v, int mb) {
        return slotOf.get(slotKey(v, mb));
    }

    /** Frees the slot micro-batch {@code mb} holds in chunk {@code v}. */
    void release(int v, int mb) {
        Integer slot = slotOf.remove(slotKey(v, mb));
        freeSlots.get(v).push(slot);
    }

    private static long slotKey(int v, int mb) {
        return ((long) v << 32) | mb;
    }
}
