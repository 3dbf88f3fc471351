// The app's callbacks (getUser, getId, profile, skip) failing on demand, over real HTTP:
// each is reported under its own name, once until it next succeeds, and never fails a page.
import { expect } from 'chai';
import { presenceApp, type LocalsJson } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { expressVersions, listen, type Listening } from './helpers/server';
import type { OnlineTracker } from 'express-online-now';

type Kind = 'getUser' | 'getId' | 'profile' | 'skip';
const kinds: readonly Kind[] = ['getUser', 'getId', 'profile', 'skip'];

for (const { name, express } of expressVersions) {
  describe(`app callbacks that throw (${name})`, () => {
    let server: Listening | undefined;
    let tracker: OnlineTracker | undefined;
    afterEach(async () => {
      await server?.close();
      await tracker?.close();
      server = undefined;
      tracker = undefined;
    });

    /** An app whose four callbacks each throw while their flag in `broken` is set. */
    async function start() {
      const broken: Record<Kind, boolean> = { getUser: false, getId: false, profile: false, skip: false };
      const fail = (kind: Kind): void => {
        if (broken[kind]) throw new Error(`${kind} broke`);
      };
      const errors: string[] = [];
      const made = presenceApp(express, {
        getUser: (req) => {
          fail('getUser');
          return (req.session as { user?: unknown } | undefined)?.user;
        },
        getId: (user) => {
          fail('getId');
          return (user as { id: unknown }).id;
        },
        profile: (user) => {
          fail('profile');
          return { name: (user as { name?: string }).name };
        },
        skip: () => {
          fail('skip');
          return false;
        },
        onError: (error) => errors.push(error.message),
      });
      tracker = made.online;
      server = await listen(made.app);
      const base = server.base;
      /** A browser signed in as `id`; its login request ran before the session had a user, so it marked nobody. */
      const signedIn = async (id: number, userName = `User ${id}`): Promise<CookieBrowser> => {
        const browser = new CookieBrowser(base);
        expect((await browser.post('/login', { id: String(id), type: 'number', name: userName })).status).to.equal(204);
        return browser;
      };
      return { broken, errors, online: made.online, signedIn };
    }

    /** `times` pages, each of which must render. */
    async function pages(browser: CookieBrowser, times: number): Promise<LocalsJson[]> {
      const seen: LocalsJson[] = [];
      for (let i = 0; i < times; i++) seen.push(await browser.json<LocalsJson>('/locals?ask=[1]'));
      return seen;
    }

    it('a throwing skip skips the request: no presence locals, and the user is not marked online', async () => {
      const { broken, errors, online, signedIn } = await start();
      const ann = await signedIn(1, 'Ann');
      broken.skip = true;
      for (const locals of await pages(ann, 2)) {
        expect(locals.present).to.equal(false);
        expect(locals.onlineCount).to.equal(undefined);
        expect(locals.onlineNow).to.equal(undefined);
        expect(locals.isOnline).to.equal(null);
      }
      expect(await online.isOnline(1)).to.equal(false);
      expect(await online.count()).to.equal(0);
      // Once skip works again, the next page has presence, and only that request's user in it.
      broken.skip = false;
      const bob = await signedIn(2, 'Bob');
      const [locals] = await pages(bob, 1);
      expect(locals.present).to.equal(true);
      expect(locals.onlineNowIds).to.deep.equal([2]);
      expect(locals.isOnline).to.deep.equal([false]);
      expect(errors).to.deep.equal(['skip broke']);
    });

    it('a failing skip does not silence a later failing profile: two reports', async () => {
      const { broken, errors, signedIn } = await start();
      const ann = await signedIn(1);
      broken.skip = true;
      await pages(ann, 2);
      expect(errors).to.deep.equal(['skip broke']);
      broken.skip = false;
      broken.profile = true;
      await pages(ann, 2);
      expect(errors).to.deep.equal(['skip broke', 'profile broke']);
    });

    it('a failing profile does not silence a later failing skip, though no request succeeded in between', async () => {
      const { broken, errors, signedIn } = await start();
      const ann = await signedIn(1);
      broken.profile = true;
      await pages(ann, 2);
      broken.skip = true; // profile still broken: one shared "callback" report would swallow this
      await pages(ann, 2);
      expect(errors).to.deep.equal(['profile broke', 'skip broke']);
    });

    for (const kind of kinds) {
      it(`a ${kind} that recovers and fails again is reported again; without a success in between it is not`, async () => {
        const { broken, errors, signedIn } = await start();
        const ann = await signedIn(1);
        broken[kind] = true;
        await pages(ann, 3);
        expect(errors).to.deep.equal([`${kind} broke`]);
        // Mended and broken again with no request in between: still the same failure, not reported.
        broken[kind] = false;
        broken[kind] = true;
        await pages(ann, 2);
        expect(errors).to.deep.equal([`${kind} broke`]);
        // One page where it succeeds, then it breaks again: a new failure, reported once more.
        broken[kind] = false;
        await pages(ann, 1);
        broken[kind] = true;
        await pages(ann, 3);
        expect(errors).to.deep.equal([`${kind} broke`, `${kind} broke`]);
      });
    }

    for (const kind of ['getUser', 'getId', 'skip'] as const) {
      it(`a throwing ${kind} renders the page and leaves its user unmarked`, async () => {
        const { broken, online, signedIn } = await start();
        const ann = await signedIn(1);
        broken[kind] = true;
        const [locals] = await pages(ann, 1);
        if (kind !== 'skip') expect(locals).to.include({ present: true, onlineCount: 0 });
        broken[kind] = false;
        expect(await online.isOnline(1)).to.equal(false);
      });
    }

    it('a throwing profile does not wipe the profile the user already has', async () => {
      const { broken, signedIn } = await start();
      const ann = await signedIn(1, 'Ann');
      const [before] = await pages(ann, 1);
      expect(before.onlineNow[0]).to.include({ id: 1, name: 'Ann' });
      broken.profile = true;
      // The README: the request renders without its user marked, so the listed entry stays as it was.
      const [after] = await pages(ann, 1);
      expect(after.onlineNow[0]).to.include({ id: 1, name: 'Ann' });
    });
  });
}
