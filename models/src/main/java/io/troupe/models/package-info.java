/** Models, optimizer, learning-rate schedules, data and checkpoints. No Pekko. */
package io.troupe.models;
