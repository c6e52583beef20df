/**
 * uws-hub-session: session time-left / idle warnings for uws_hub job servers.
 *
 * Polls `GET <baseUrl>uws/session` every 20 s (through ServerConnection, so the
 * lab page's token / XSRF cookie are used), shows each new warning once as a
 * JupyterLab notification (with an "Extend by N minutes" action when allowed)
 * and shows the time left in the status bar.  When the endpoint is missing
 * (404) polling stops; any other failure is logged with console.debug only.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

const PLUGIN_ID = 'uws-hub-session:plugin';
const POLL_MS = 20_000;

interface ISessionWarning {
  kind: string;
  at: string;
  message: string;
}

interface ISessionState {
  time_left: number | null;
  end: string | null;
  warnings?: ISessionWarning[];
  idle?: { warning: string | null };
  extend?: {
    allowed: boolean;
    minutes: number;
    used?: number;
    why_not: string | null;
  };
}

/** "1 h 05 min" / "42 min" / "< 1 min". */
export function formatTimeLeft(seconds: number): string {
  const minutes = Math.floor(Math.max(0, seconds) / 60);
  if (minutes < 1) {
    return '< 1 min';
  }
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min`;
}

function sessionUrl(settings: ServerConnection.ISettings, tail = ''): string {
  const base = settings.baseUrl.endsWith('/')
    ? settings.baseUrl
    : settings.baseUrl + '/';
  return `${base}uws/session${tail}`;
}

async function readJSON(response: Response): Promise<any> {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'uws_hub session warnings, extend action and time-left item.',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null): void => {
    const settings = ServerConnection.makeSettings();
    const shown = new Set<string>();
    // the notifications still up, by key: withdrawn when the server no longer lists their
    // warning (an extension moved the end, activity cancelled an idle stop)
    const up = new Map<string, string>();
    let timer: number | undefined;
    let stopped = false;

    // --- status bar item ---------------------------------------------------
    const label = new Widget();
    label.addClass('jp-uws-session-status');
    label.node.textContent = '';
    let statusActive = false;
    const statusChanged = new Signal<Widget, void>(label);
    if (statusBar) {
      statusBar.registerStatusItem(`${PLUGIN_ID}:status`, {
        item: label,
        align: 'left',
        rank: 1000,
        isActive: () => statusActive,
        activeStateChanged: statusChanged
      });
    }
    const setStatus = (timeLeft: number | null): void => {
      const active = typeof timeLeft === 'number';
      label.node.textContent = active
        ? `Session: ${formatTimeLeft(timeLeft as number)} left`
        : '';
      label.node.title = active ? 'Time left in this job session' : '';
      if (active !== statusActive) {
        statusActive = active;
        statusChanged.emit(undefined);
      }
    };

    // --- extend action -----------------------------------------------------
    // `used`: the extensions seen when the button was shown, so that a repeated click (or one
    // whose answer was lost) is refused by the service instead of extending twice
    const extend = async (minutes: number, used?: number): Promise<void> => {
      try {
        const response = await ServerConnection.makeRequest(
          sessionUrl(settings, '/extend'),
          {
            method: 'POST',
            body: JSON.stringify(
              used === undefined ? { minutes } : { minutes, used }
            ),
            headers: { 'Content-Type': 'application/json' }
          },
          settings
        );
        const data = await readJSON(response);
        const message =
          typeof data.message === 'string' && data.message
            ? data.message
            : response.ok
              ? `Extended by ${minutes} minutes.`
              : `Could not extend the session (HTTP ${response.status}).`;
        if (response.ok) {
          Notification.success(message, { autoClose: 8000 });
        } else {
          Notification.error(message, { autoClose: false });
        }
      } catch (reason) {
        console.debug(`${PLUGIN_ID}: extend failed`, reason);
        Notification.error('Could not extend the session.', {
          autoClose: false
        });
      }
      void poll(false);
    };

    const notify = (key: string, message: string, state: ISessionState) => {
      if (shown.has(key)) {
        return;
      }
      shown.add(key);
      const actions: Notification.IAction[] = [];
      const ext = state.extend;
      if (ext && ext.allowed && ext.minutes > 0) {
        actions.push({
          label: `Extend by ${ext.minutes} minutes`,
          caption: 'Ask the hub for more time for this session',
          displayType: 'accent',
          callback: () => {
            void extend(ext.minutes, ext.used);
          }
        });
      }
      up.set(key, Notification.warning(message, { autoClose: false, actions }));
    };

    const withdrawStale = (current: Set<string>): void => {
      for (const [key, id] of up) {
        if (!current.has(key)) {
          Notification.dismiss(id);
          up.delete(key);
        }
      }
    };

    // --- polling -----------------------------------------------------------
    const poll = async (reschedule = true): Promise<void> => {
      if (stopped) {
        return;
      }
      try {
        const response = await ServerConnection.makeRequest(
          sessionUrl(settings),
          { method: 'GET' },
          settings
        );
        if (response.status === 404) {
          // No uws_hub server side on this server: stay silent for good.
          console.debug(`${PLUGIN_ID}: ${response.url} is 404, not polling`);
          stopped = true;
          setStatus(null);
          return;
        }
        if (!response.ok) {
          console.debug(`${PLUGIN_ID}: HTTP ${response.status}`);
        } else {
          const state = (await response.json()) as ISessionState;
          setStatus(
            typeof state.time_left === 'number' ? state.time_left : null
          );
          const current = new Set<string>();
          for (const w of state.warnings ?? []) {
            if (w && w.message) {
              current.add(`${w.kind}|${w.at}`);
              notify(`${w.kind}|${w.at}`, w.message, state);
            }
          }
          const idle = state.idle?.warning;
          if (idle) {
            current.add(`idle|${idle}`);
            notify(`idle|${idle}`, idle, state);
          }
          withdrawStale(current);
        }
      } catch (reason) {
        console.debug(`${PLUGIN_ID}: poll failed`, reason);
      } finally {
        if (reschedule && !stopped) {
          window.clearTimeout(timer);
          timer = window.setTimeout(() => void poll(), POLL_MS);
        }
      }
    };

    // Start once the shell is restored so the toast area exists.
    void app.restored.then(() => poll());
  }
};

export default plugin;
