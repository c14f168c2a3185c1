/**
 * Pipeline schedules as plain data, the policies that run them (static and adaptive), their validator
 * and a discrete-event simulator; no Pekko here, the stage executor actor drives these objects.
 */
package io.troupe.actors.schedule;
