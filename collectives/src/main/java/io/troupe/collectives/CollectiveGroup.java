package io.troupe.collectives;

import io.troupe.runtime.transport.TransportEndpoint;
import java.util.Arrays;

/**
 * One group of ranks that run collectives together (a data-parallel group, a tensor-parallel
 * group): an immutable value built once from the job's topology and passed to
 * {@link CollectiveAgent#communicator}; no static rank state.
 *
 * <p>Members are global ranks in group order (index 0 first); the group order fixes every
 * algorithm's reduction order, so it must be the same on every member. {@code groupId} (0..255)
 * tells this group's frames apart from another group's on the same worker: two groups that share a
 * worker need different ids. {@code endpoints[i]} is where member {@code i} receives.
 *
 * <p>Worked example: layout dp=2, tp=2 (ranks {@code tp_i + 2*dp_i}); rank 3's data-parallel group
 * is {@code members=[1, 3], myIndex=1}, its tensor-parallel group {@code members=[2, 3], myIndex=1}.
 *
 * @param epoch     the epoch stamped on every frame; frames of older epochs are dropped
 * @param groupId   0..255, unique among the groups a worker belongs to
 * @param members   global ranks, in group order, distinct
 * @param myIndex   this worker's index in {@code members}
 * @param endpoints data-plane endpoint of each member, same order as {@code members}
 */
public record CollectiveGroup(long epoch, int groupId, int[] members, int myIndex, TransportEndpoint[] endpoints) {
    /** Largest group: ring step numbers must fit the key's 11 step bits. */
    public static final int MAX_SIZE = 1024;

    public CollectiveGroup {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must be non-negative: epoch=" + epoch);
        }
        if (groupId < 0 || groupId > CollectiveKey.MAX_GROUP_ID) {
            throw new IllegalArgumentException("groupId must be in [0, " + CollectiveKey.MAX_GROUP_ID + "]: groupId="
                + groupId);
        }
        if (members == null || members.length < 1 || members.length > MAX_SIZE) {
            throw new IllegalArgumentException("group size must be in [1, " + MAX_SIZE + "]: members="
                + (members == null ? "null" : members.length));
        }
        if (endpoints == null || endpoints.length != members.length) {
            throw new IllegalArgumentException("one endpoint per member: members=" + members.length + ", endpoints="
                + (endpoints == null ? "null" : endpoints.length));
        }
        if (myIndex < 0 || myIndex >= members.length) {
            throw new IllegalArgumentException("myIndex must be in [0, " + members.length + "): myIndex=" + myIndex);
        }
        members = members.clone();
        endpoints = endpoints.clone();
        for (int i = 0; i < members.length; i++) {
            if (members[i] < 0) {
                throw new IllegalArgumentException("ranks must be non-negative: members=" + Arrays.toString(members));
            }
            if (endpoints[i] == null) {
                throw new IllegalArgumentException("endpoint of member " + i + " (rank " + members[i] + ") is null");
            }
            for (int j = 0; j < i; j++) {
                if (members[j] == members[i]) {
                    throw new IllegalArgumentException("ranks must be distinct: members=" + Arrays.toString(members));
                }
            }
        }
    }

    /** A group of {@code endpoints.length} ranks {@code 0..n-1} (the whole world, or a test group). */
    public static CollectiveGroup ofWorld(long epoch, int groupId, int myRank, TransportEndpoint... endpoints) {
        int[] members = new int[endpoints.length];
        for (int i = 0; i < members.length; i++) {
            members[i] = i;
        }
        return new CollectiveGroup(epoch, groupId, members, myRank, endpoints);
    }

    public int size() {
        return members.length;
    }

    /** Global rank of member {@code index}. */
    public int rankAt(int index) {
        return members[index];
    }

    /** This worker's global rank. */
    public int myRank() {
        return members[myIndex];
    }

    /** The index of global {@code rank} in this group, or -1. */
    public int indexOf(int rank) {
        for (int i = 0; i < members.length; i++) {
            if (members[i] == rank) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public int[] members() {
        return members.clone();
    }

    @Override
    public TransportEndpoint[] endpoints() {
        return endpoints.clone();
    }

    TransportEndpoint endpointAt(int index) {
        return endpoints[index];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CollectiveGroup g && g.epoch == epoch && g.groupId == groupId && g.myIndex == myIndex
            && Arrays.equals(g.members, members) && Arrays.equals(g.endpoints, endpoints);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(epoch) * 31 + groupId * 17 + Arrays.hashCode(members) + myIndex;
    }

    @Override
    public String toString() {
        return "CollectiveGroup{epoch=" + epoch + ", groupId=" + groupId + ", members=" + Arrays.toString(members)
            + ", myIndex=" + myIndex + "}";
    }
}
