/// The engine's timeouts and limits. Every plugin step that can block has a timeout: a plugin that
/// overruns one fails the apply naming the step, and the old generation keeps serving.
public struct EngineSettings: Sendable {
    /// Time between readiness polls of a new instance (the first poll is immediate).
    public var readinessInterval: Duration = .milliseconds(5)
    /// A new instance not READY by then is abandoned; the old one keeps serving.
    public var readinessTimeout: Duration = .seconds(10)
    /// How long a switched-out generation may take to finish its calls. Calls the plugin still holds
    /// then are left to it: the generation is *abandoned* (destroyed once the plugin completes them)
    /// and stops blocking later applies. For stateful components it also bounds the pause: calls still
    /// running then make the reload fail, old untouched (state cannot be exported under a call).
    public var drainTimeout: Duration = .seconds(30)
    /// The deadline of an app call whose client set none. A call past its deadline answers
    /// DEADLINE_EXCEEDED and stops counting against drains.
    public var callTimeout: Duration = .seconds(30)
    /// Timeouts of the blocking plugin steps.
    public var initTimeout: Duration = .seconds(10)
    public var applyConfigTimeout: Duration = .seconds(10)
    /// Export and import, each.
    public var stateTransferTimeout: Duration = .seconds(10)
    public var destroyTimeout: Duration = .seconds(10)
    /// Apply results kept for status APIs.
    public var historyLimit = 256
    /// Largest exported state accepted in a handoff.
    public var stateTransferLimit = 1 << 30
    /// Most components the engine runs; molt keeps the default (tests lower it).
    public var maxComponents = ComponentLimits.maxComponents
    /// The app ID state keys are prefixed with (Dapr's `keyPrefix: appid`, the default).
    public var appID = ""

    public init() {}
}
