// The only two IPC channels between the window and the main process: requests in
// (invoke/handle), events out (send). Import-free, so the sandboxed preload can bundle it.
export const IPC_REQUEST = 'stacklab:req';
export const IPC_EVENT = 'stacklab:evt';
