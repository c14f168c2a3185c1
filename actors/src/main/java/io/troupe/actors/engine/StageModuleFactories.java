package io.troupe.actors.engine;

import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;
import java.util.List;

/**
 * Finds the {@link StageModuleFactory} a job names ({@link PipelineJobSpec#moduleFactory()}): the
 * one place that knows GPT is the default, so the model-neutral plug-in interface does not. A
 * class is loaded without running its static initialisers and is instantiated only once it is
 * known to be a factory; a cluster also refuses any class not in its allow-list
 * ({@code troupe.cluster.allowed-stage-modules}, {@link #checkAllowed}).
 */
public final class StageModuleFactories {
    /** The config key listing the factories a cluster accepts besides the built-in GPT. */
    public static final String ALLOW_LIST_KEY = "troupe.cluster.allowed-stage-modules";

    private StageModuleFactories() {
    }

    /** Whether {@code className} names the built-in GPT factory ({@code ""} or its class). */
    public static boolean isBuiltIn(String className) {
        return className == null || className.isEmpty() || className.equals(GptStages.class.getName());
    }

    /**
     * Refuses a factory a cluster does not accept, by name only (nothing is loaded).
     *
     * @param allowed the classes accepted besides the built-in GPT, which is always accepted
     * @throws IllegalArgumentException naming the class and the allow-list when it is not on it
     */
    public static void checkAllowed(String className, List<String> allowed) {
        if (!isBuiltIn(className) && !allowed.contains(className)) {
            throw new IllegalArgumentException("stage module factory " + className + " is not in "
                + ALLOW_LIST_KEY + " " + allowed + " (only listed factories and the built-in GPT are loaded)");
        }
    }

    /**
     * The factory named by its class, or GPT's for {@code ""}. The class is loaded without running
     * its static initialisers; only a {@link StageModuleFactory} is instantiated.
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
            c = Class.forName(className, false, loader);
        } catch (ClassNotFoundException | LinkageError e) {
            throw new IllegalArgumentException("stage module factory class not found on this node: " + className);
        }
        if (!StageModuleFactory.class.isAssignableFrom(c)) {
            throw new IllegalArgumentException("class " + className + " does not implement "
                + StageModuleFactory.class.getName());
        }
        try {
            return (StageModuleFactory) c.getConstructor().newInstance();
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new IllegalArgumentException("stage module factory " + className
                + " needs a public no-argument constructor: " + e);
        }
    }

    /**
     * As {@link #named(String)}, for a class that must also be on {@code allowed}: a class not on it
     * is refused before it is loaded.
     *
     * @throws IllegalArgumentException naming the class when it is not allowed, missing or not a factory
     */
    public static StageModuleFactory named(String className, List<String> allowed) {
        checkAllowed(className, allowed);
        return named(className);
    }
}
