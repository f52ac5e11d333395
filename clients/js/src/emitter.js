/** A set of listeners; `on` returns the function that removes the listener. */
export class Emitter {
  #listeners = new Set();

  on(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  emit(...args) {
    for (const fn of [...this.#listeners]) {
      try {
        fn(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
