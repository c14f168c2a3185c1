package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorReceiverAgent;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class CollectiveAgentPeerEventsTest {

    @Test
    void shouldForwardEveryPeerLossEvenWhenTheLastImageGoes() {
        List<String> seen = new ArrayList<>();
        TensorReceiverAgent.Listener delegate = new TensorReceiverAgent.Listener() {
            @Override
            public void onTensorReady(ReceiveSlot slot) {
                slot.release();
            }

            @Override
            public void onPeerLost(int peerRank) {
                seen.add("lost " + peerRank);
            }
        };
        CollectiveAgent agent = new CollectiveAgent("t", delegate, Throwable::printStackTrace);
        agent.onPeerConnected(3, "a");
        agent.onPeerConnected(3, "b");
        agent.onPeerLost(3);
        agent.onPeerLost(3);
        agent.onPeerLost(3);
        assertEquals(List.of("lost 3", "lost 3", "lost 3"), seen);
    }
}
