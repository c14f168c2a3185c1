package io.troupe.actors.schedule;

/** Why a rank's device sat idle. */
public enum IdleCause {
    /** The next action's input has not been produced upstream yet (includes the pipeline fill). */
    INPUT,
    /** The input was produced and is on the wire (latency plus bytes over bandwidth). */
    COMMUNICATION,
    /** A forward was ready but admitting it would pass the activation-memory budget. */
    MEMORY_CAP,
    /** This rank finished its work for the step and waits for the others (the pipeline drain). */
    DRAINED;

    /** Lower-case name used in tables and traces. */
    public String label() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
