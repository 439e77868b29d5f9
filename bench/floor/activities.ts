/** Three trivial steps, run as local activities: what the floor workflow costs is Temporal's part alone. */
export const floorActivities = {
  async verify(request: string): Promise<string> {
    return `${request}:verified`;
  },
  async issue(request: string): Promise<string> {
    return `${request}:issued`;
  },
  async record(request: string): Promise<string> {
    return `${request}:recorded`;
  },
};

export type FloorActivities = typeof floorActivities;
