// The console's shell: sign-in, navigation, the live indicator and the routes.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, getToken, setToken, whenUnauthorised } from "./api.js";
import { connect, onMode, stopLive, type LiveMode } from "./events.js";
import { match, navigate, useLocation, type Route } from "./router.js";
import { getMe, setMe, type Me } from "./session.js";
import { OverviewPage } from "./pages/overview.js";
import { DeploymentPage } from "./pages/deployment.js";
import { PromotionPage } from "./pages/promotion.js";
import { DeploymentsPage, PromotionsPage, ReleasesPage, RolloutsPage } from "./pages/lists.js";
import { RolloutPage } from "./pages/rollout.js";
import { ReleasePage } from "./pages/release.js";
import { AgentPage, FleetPage } from "./pages/fleet.js";
import { EnvironmentPage } from "./pages/environment.js";

const routes: Route[] = [
  { pattern: /^\/$/, render: () => <OverviewPage /> },
  { pattern: /^\/releases\/?$/, render: () => <ReleasesPage /> },
  { pattern: /^\/releases\/([^/]+)$/, render: ([id]) => <ReleasePage id={id!} /> },
  { pattern: /^\/promotions\/?$/, render: () => <PromotionsPage /> },
  { pattern: /^\/promotions\/([^/]+)$/, render: ([id]) => <PromotionPage id={id!} /> },
  { pattern: /^\/deployments\/?$/, render: () => <DeploymentsPage /> },
  { pattern: /^\/deployments\/([^/]+)$/, render: ([id]) => <DeploymentPage id={id!} /> },
  { pattern: /^\/rollouts\/?$/, render: () => <RolloutsPage /> },
  { pattern: /^\/rollouts\/([^/]+)$/, render: ([id]) => <RolloutPage id={id!} /> },
  { pattern: /^\/fleet\/?$/, render: () => <FleetPage /> },
  { pattern: /^\/agents\/([^/]+)$/, render: ([id]) => <AgentPage id={id!} /> },
  { pattern: /^\/environments\/([^/]+)$/, render: ([name]) => <EnvironmentPage name={name!} /> },
];

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/promotions", "Promotions"],
  ["/deployments", "Deployments"],
  ["/rollouts", "Rollouts"],
  ["/releases", "Releases"],
  ["/fleet", "Fleet"],
];

function SignIn({ error, onSignedIn }: { error: string; onSignedIn: (me: Me) => void }) {
  const [value, setValue] = useState("");
  const [remember, setRemember] = useState(false);
  const [problem, setProblem] = useState(error);
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" class="sign-in">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setToken(value.trim(), remember);
          api<Me>("/api/v1/whoami")
            .then((me) => onSignedIn(me))
            .catch((err: unknown) => {
              setToken(null);
              setProblem(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
            })
            .finally(() => setBusy(false));
        }}
      >
        <h1>Sign in to Ferry</h1>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autoComplete="off" placeholder="ferry_…" required value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
        <label class="inline">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember((e.target as HTMLInputElement).checked)} /> Remember on this computer
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        <p class="muted small">
          The token stays in this browser (for this tab only unless remembered) and is sent only in request headers, never in a URL. The admin token was printed when the server first started and is in <code>&lt;data-dir&gt;/admin-token</code>; <code>ferry api-token create</code> makes others.
        </p>
        {problem ? (
          <p class="error" role="alert">
            {problem}
          </p>
        ) : null}
      </form>
    </main>
  );
}

function LiveBadge() {
  const [mode, setMode] = useState<LiveMode>("off");
  useEffect(() => onMode(setMode), []);
  const text = mode === "live" ? "live" : mode === "polling" ? "polling every 2 s" : mode === "connecting" ? "connecting…" : "offline";
  return (
    <span class={`live live-${mode}`} role="status" title={mode === "polling" ? "The event stream is not available here (a proxy may buffer it); the console polls instead." : "Changes appear as they happen."}>
      {text}
    </span>
  );
}

function App() {
  const [me, setMeState] = useState<Me | null>(getMe());
  const [checking, setChecking] = useState(!!getToken());
  const [error, setError] = useState("");
  const { path } = useLocation();

  const signedIn = (m: Me) => {
    setMe(m);
    setMeState(m);
    setError("");
    connect();
  };
  const signOut = (why = "") => {
    stopLive();
    setToken(null);
    setMe(null);
    setMeState(null);
    setError(why);
  };

  useEffect(() => {
    whenUnauthorised((e) => signOut(`${e.code}: ${e.message}`));
    if (getToken()) {
      api<Me>("/api/v1/whoami")
        .then(signedIn)
        .catch((err: unknown) => signOut(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)))
        .finally(() => setChecking(false));
    }
  }, []);

  if (checking) return <main id="main" aria-busy="true" />;
  if (!me) return <SignIn error={error} onSignedIn={signedIn} />;
  const page = match(routes, path);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          Ferry
        </a>
        <nav aria-label="main">
          {NAV.map(([href, label]) => {
            const current = href === "/" ? path === "/" : path.startsWith(href) || (href === "/fleet" && path.startsWith("/agents"));
            return (
              <a key={href} href={href} aria-current={current ? "page" : undefined}>
                {label}
              </a>
            );
          })}
        </nav>
        <div class="who">
          <LiveBadge />
          <span title={me.roles.join(", ")} data-subject={me.subject}>
            {me.subject} <span class="muted small">({me.roles.join(", ")})</span>
          </span>
          <button type="button" class="link" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page ?? (
          <p class="error">
            No page at <code>{path}</code>. <a href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>Go to the overview</a>.
          </p>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
