package io.troupe.actors.engine;

import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;

/**
 * Finds the {@link StageModuleFactory} a job names ({@link PipelineJobSpec#moduleFactory()}): the
 * one place that knows GPT is the default, so the model-neutral plug-in interface does not.
 */
public final class StageModuleFactories {
    private StageModuleFactories() {
    }

    /**
     * The factory named by its class, or GPT's for {@code ""}.
     *
     * @throws IllegalArgumentException naming the class when it is missing or not a usable factory
     */
    public static StageModuleFactory named(String className) {
        if (className == null || className.isEmpty()) {
            return new GptStages();
        }
        ClassLoader loader = Thread.currentThread().getContextClassLoader() != null
            ? Thread.currentThread().getContextClassLoader() : StageModuleFactories.class.getClassLoader();
        Class<?> c;
        try {
            c = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            throw new IllegalArgumentException("stage module factory class not found on this node: " + className);
        }
        if (!StageModuleFactory.class.isAssignableFrom(c)) {
            throw new IllegalArgumentException("class " + className + " does not implement "
                + StageModuleFactory.class.getName());
        }
        try {
            return (StageModuleFactory) c.getConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalArgumentException("stage module factory " + className
                + " needs a public no-argument constructor: " + e);
        }
    }
}
